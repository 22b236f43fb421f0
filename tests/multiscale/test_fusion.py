import numpy as np
import pytest
import torch

from semst.multiscale import Box, crop, downsample, sample_multiscale_crops
from semst.multiscale.fusion import ScaleAttentionHead, crop_to_boxes, fuse, upsample_by, upsample_rows


def test_attention_is_a_probability_map_and_starts_neutral():
    head = ScaleAttentionHead(16, hidden=8)
    m = head(torch.randn(2, 16, 12, 10))
    assert m.shape == (2, 1, 12, 10) and (m > 0).all() and (m < 1).all()
    assert abs(m.mean().item() - 0.5) < 0.05  # zero initial bias, tiny weights: both scales trusted alike
    biased = ScaleAttentionHead(16, hidden=8, initial_bias=3.0)
    assert biased(torch.randn(1, 16, 4, 4)).min() > 0.9


def test_fusion_limits_and_convex_combination():
    local, global_image = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(fuse(local, global_image, torch.ones(1, 1, 32, 32)), local)
    torch.testing.assert_close(fuse(local, global_image, torch.zeros(1, 1, 32, 32)), global_image)
    half = torch.full((1, 1, 32, 32), 0.5)
    torch.testing.assert_close(fuse(local, global_image, half), 0.5 * (local + global_image))


def test_global_prediction_is_taken_from_the_local_region():
    """With identity 'generators', the global prediction brought onto the local crop is the image seen at the
    global crop's resolution, upsampled over the whole global crop and cut to the local region: the same
    values full-resolution translation uses (it upsamples the whole downsampled image)."""
    image = torch.rand(1, 3, 128, 160)
    crops = sample_multiscale_crops(
        128, 160, global_region=128, scale=2, local_size=32, rng=np.random.default_rng(4)
    )
    global_crop = downsample(crop(image, crops.global_box), 2)  # Y_g = X_g for an identity generator
    local_crop = crop(image, crops.local_box)
    on_local = crop_to_boxes(global_crop, crops.local_in_global, 2)
    whole = upsample_by(global_crop, 2)
    g, l_ = crops.global_box, crops.local_box
    expected = whole[..., l_.top - g.top : l_.top - g.top + 32, l_.left - g.left : l_.left - g.left + 32]
    torch.testing.assert_close(on_local, expected)
    # Away from the crop's border, that is the local crop averaged over 2x2 blocks and upsampled again.
    blurred = upsample_by(downsample(local_crop, 2), 2)
    torch.testing.assert_close(on_local[..., 2:-2, 2:-2], blurred[..., 2:-2, 2:-2])


def test_each_image_of_a_batch_uses_its_own_box():
    maps = torch.rand(2, 4, 16, 16)
    boxes = [Box(0, 0, 4, 4), Box(10, 6, 4, 4)]
    batched = crop_to_boxes(maps, torch.tensor([[0, 0, 4, 4], [10, 6, 4, 4]]), 2)
    assert batched.shape == (2, 4, 8, 8)
    for b, box in enumerate(boxes):
        torch.testing.assert_close(batched[b : b + 1], crop_to_boxes(maps[b : b + 1], box, 2))
    with pytest.raises(ValueError, match="one per image"):
        crop_to_boxes(maps, boxes[:1], 2)


@pytest.mark.parametrize(
    ("low", "scale", "width"), [((16, 16), 2, 32), ((7, 13), 2, 25), ((5, 9), 1, 9), ((3, 4), 8, 31)]
)
def test_banded_upsampling_equals_torch_bilinear(low, scale, width):
    x = torch.randn(1, 4, *low)
    reference = upsample_by(x, scale)[..., :width]
    height = low[0] * scale
    for start in range(0, height, 5):
        rows = slice(start, min(height, start + 5))
        torch.testing.assert_close(
            upsample_rows(x, rows, scale, width), reference[..., rows, :], atol=1e-5, rtol=1e-5
        )
    with pytest.raises(ValueError, match="non-empty slice"):
        upsample_rows(x, slice(3, 3), scale, width)
    with pytest.raises(ValueError, match="width"):
        upsample_rows(x, slice(0, 1), scale, low[1] * scale + 1)


def test_gradients_reach_both_branches_and_the_attention():
    local = torch.rand(1, 3, 8, 8, requires_grad=True)
    global_maps = torch.rand(1, 3, 4, 4, requires_grad=True)
    head = ScaleAttentionHead(4, hidden=4)
    att = head(torch.randn(1, 4, 4, 4))
    on_local = crop_to_boxes(torch.cat([global_maps, att], 1), Box(0, 0, 4, 4), 2)
    fused = fuse(local, on_local[:, :3], on_local[:, 3:])
    fused.square().sum().backward()
    assert local.grad.abs().sum() > 0 and global_maps.grad.abs().sum() > 0
    assert head.out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("start", [0.12, 0.5, 0.88])
def test_the_translator_starts_at_the_configured_attention(start):
    """``multiscale.attention_init`` is the M_s a new multi-scale translator predicts everywhere."""
    from semst.config import ExperimentConfig
    from semst.translators import MultiScaleTranslator

    config = ExperimentConfig().replace(
        {"generator.base_channels": 8, "generator.num_blocks": 2, "multiscale.attention_init": start}
    )
    translator = MultiScaleTranslator.build(config)
    maps, _ = translator.predict_global(torch.rand(1, 3, 32, 32) * 2 - 1)
    attention = maps[:, 3]
    assert (attention - start).abs().max() < 0.02


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 2.0])
def test_an_attention_start_outside_the_open_unit_interval_is_refused(bad):
    from semst.config import ConfigError, ExperimentConfig

    with pytest.raises(ConfigError, match="multiscale.attention_init must be in"):
        ExperimentConfig().replace({"multiscale.attention_init": bad}).validate()
