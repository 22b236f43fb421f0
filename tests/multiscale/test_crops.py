import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semst.multiscale import Box, crop, downsample, sample_multiscale_crops


@pytest.mark.parametrize(
    ("height", "width", "region", "scale", "local"),
    [
        (1052, 1914, 512, 2, 256),
        (1024, 2048, 512, 2, 128),
        (300, 301, 256, 4, 64),
        (256, 256, 256, 2, 256),
    ],
)
def test_local_crop_lies_inside_the_global_region_and_aligns(height, width, region, scale, local):
    rng = np.random.default_rng(0)
    for _ in range(200):
        crops = sample_multiscale_crops(
            height, width, global_region=region, scale=scale, local_size=local, rng=rng
        )
        g, lbox, lg = crops.global_box, crops.local_box, crops.local_in_global
        assert g.top >= 0 and g.top + g.height <= height and g.left >= 0 and g.left + g.width <= width
        assert g.top <= lbox.top and lbox.top + lbox.height <= g.top + g.height
        assert g.left <= lbox.left and lbox.left + lbox.width <= g.left + g.width
        assert (lbox.top - g.top) == lg.top * scale and (lbox.left - g.left) == lg.left * scale
        assert lg.height * scale == lbox.height and lg.top + lg.height <= region // scale


def test_the_local_crop_maps_exactly_onto_the_global_prediction():
    """Downsample the global crop, upsample it back (nearest), cut the local box: it must equal the local crop
    downsampled and upsampled the same way, pixel for pixel (the alignment Eq. 6 relies on)."""
    image = torch.rand(3, 300, 400)
    crops = sample_multiscale_crops(
        300, 400, global_region=256, scale=4, local_size=64, rng=np.random.default_rng(3)
    )
    global_crop = downsample(crop(image, crops.global_box), 4)  # (3, 64, 64)
    local_crop = crop(image, crops.local_box)  # (3, 64, 64) full resolution
    rows, cols = crops.local_in_global.slices()
    from_global = global_crop[:, rows, cols]  # (3, 16, 16)
    torch.testing.assert_close(from_global, F.avg_pool2d(local_crop.unsqueeze(0), 4)[0])


def test_every_aligned_local_offset_is_reachable():
    rng = np.random.default_rng(1)
    offsets = {
        sample_multiscale_crops(64, 64, global_region=64, scale=2, local_size=32, rng=rng).local_in_global.top
        for _ in range(500)
    }
    assert offsets == set(range(0, 17))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"global_region": 255, "scale": 2, "local_size": 64}, "multiple of scale"),
        ({"global_region": 256, "scale": 2, "local_size": 63}, "align"),
        ({"global_region": 256, "scale": 2, "local_size": 512}, "must not exceed"),
        ({"global_region": 1024, "scale": 2, "local_size": 64}, "smaller than the global region"),
        ({"global_region": 256, "scale": 0, "local_size": 64}, "scale must be an integer >= 1"),
    ],
)
def test_inconsistent_sizes_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_multiscale_crops(300, 400, rng=np.random.default_rng(0), **kwargs)


def test_downsampling_averages_blocks_and_keeps_partial_ones():
    """T of Eq. 4: pixel i covers image pixels [i * s, (i + 1) * s); a block cut short by the border
    averages the pixels it has, so the grid stays aligned with the local crops at any image size."""
    x = torch.rand(2, 3, 16, 12)
    torch.testing.assert_close(downsample(x, 2), F.avg_pool2d(x, 2))
    torch.testing.assert_close(downsample(x, 4), F.avg_pool2d(x, 4))
    assert downsample(x, 1) is x
    odd = torch.arange(5.0).view(1, 1, 1, 5)
    assert downsample(odd, 2).tolist() == [[[[0.5, 2.5, 4.0]]]]
    assert downsample(torch.randn(1, 3, 33, 7), 2).shape[-2:] == (17, 4)
    assert downsample(torch.rand(3, 8, 8), 2).shape == (3, 4, 4)  # unbatched
    box = Box(5, 7, 30, 30)
    assert crop(torch.rand(2, 3, 50, 60), box).shape == (2, 3, 30, 30)
    with pytest.raises(ValueError, match="scale must be >= 1"):
        downsample(x, 0)
