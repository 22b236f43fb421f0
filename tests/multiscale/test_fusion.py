import numpy as np
import pytest
import torch

from semst.multiscale import Box, crop_and_resize, sample_multiscale_crops
from semst.multiscale.fusion import ScaleAttentionHead, fuse_predictions, upsample_rows, upsample_to


def test_attention_is_a_probability_map_and_starts_neutral():
    head = ScaleAttentionHead(16, hidden=8)
    m = head(torch.randn(2, 16, 12, 10))
    assert m.shape == (2, 1, 12, 10) and (m > 0).all() and (m < 1).all()
    assert abs(m.mean().item() - 0.5) < 0.05  # zero initial bias, tiny weights: both scales trusted alike
    biased = ScaleAttentionHead(16, hidden=8, initial_bias=3.0)
    assert biased(torch.randn(1, 16, 4, 4)).min() > 0.9


def test_fusion_limits_and_convex_combination():
    local = torch.rand(1, 3, 32, 32)
    global_pred = torch.rand(1, 3, 64, 64)
    box = Box(8, 16, 16, 16)  # the local crop in global-output pixels (scale 2)
    ones, zeros = torch.ones(1, 1, 64, 64), torch.zeros(1, 1, 64, 64)
    fused, global_on_local, att = fuse_predictions(local, global_pred, ones, box)
    torch.testing.assert_close(fused, local)
    fused, global_on_local, att = fuse_predictions(local, global_pred, zeros, box)
    torch.testing.assert_close(fused, global_on_local)
    half = torch.full((1, 1, 16, 16), 0.5)  # low-resolution attention is resized to the global output
    fused, global_on_local, att = fuse_predictions(local, global_pred, half, box)
    torch.testing.assert_close(fused, 0.5 * (local + global_on_local))
    assert att.shape == (1, 1, 32, 32)


def test_global_prediction_is_taken_from_the_local_region():
    """With identity 'generators', the global prediction brought onto the local crop is the image seen at the
    global crop's resolution, upsampled over the whole global crop and cut to the local region: the same
    values full-resolution translation uses (it upsamples the whole downsampled image)."""
    image = torch.rand(1, 3, 128, 160)
    crops = sample_multiscale_crops(
        128, 160, global_region=128, scale=2, local_size=32, rng=np.random.default_rng(4)
    )
    global_crop = crop_and_resize(image, crops.global_box, 64)  # Y_g = X_g for an identity generator
    local_crop = crop_and_resize(image, crops.local_box)
    _, global_on_local, _ = fuse_predictions(
        local_crop, global_crop, torch.zeros(1, 1, 64, 64), crops.local_in_global
    )
    whole = upsample_to(global_crop, (128, 128))
    g, l_ = crops.global_box, crops.local_box
    expected = whole[..., l_.top - g.top : l_.top - g.top + 32, l_.left - g.left : l_.left - g.left + 32]
    torch.testing.assert_close(global_on_local, expected)
    # Away from the crop's border, that is the local crop averaged over 2x2 blocks and upsampled again.
    blurred = upsample_to(crop_and_resize(local_crop, Box(0, 0, 32, 32), 16), (32, 32))
    torch.testing.assert_close(global_on_local[..., 2:-2, 2:-2], blurred[..., 2:-2, 2:-2])


def test_each_image_of_a_batch_uses_its_own_box():
    local = torch.rand(2, 3, 8, 8)
    global_pred = torch.rand(2, 3, 16, 16)
    attention = torch.zeros(2, 1, 16, 16)
    boxes = [Box(0, 0, 4, 4), Box(10, 6, 4, 4)]
    _, batched, _ = fuse_predictions(
        local, global_pred, attention, torch.tensor([[0, 0, 4, 4], [10, 6, 4, 4]])
    )
    for b, box in enumerate(boxes):
        _, single, _ = fuse_predictions(local[b : b + 1], global_pred[b : b + 1], attention[b : b + 1], box)
        torch.testing.assert_close(batched[b : b + 1], single)
    with pytest.raises(ValueError, match="one per image"):
        fuse_predictions(local, global_pred, attention, boxes[:1])


@pytest.mark.parametrize(
    ("low", "size"), [((16, 16), (32, 32)), ((7, 13), (13, 25)), ((5, 9), (5, 9)), ((3, 4), (29, 31))]
)
def test_banded_upsampling_equals_torch_bilinear(low, size):
    x = torch.randn(1, 4, *low)
    reference = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    for start in range(0, size[0], 5):
        rows = slice(start, min(size[0], start + 5))
        torch.testing.assert_close(
            upsample_rows(x, rows, size), reference[..., rows, :], atol=1e-5, rtol=1e-5
        )
    with pytest.raises(ValueError, match="non-empty slice"):
        upsample_rows(x, slice(3, 3), size)


def test_gradients_reach_both_branches_and_the_attention():
    local = torch.rand(1, 3, 8, 8, requires_grad=True)
    global_pred = torch.rand(1, 3, 8, 8, requires_grad=True)
    head = ScaleAttentionHead(4, hidden=4)
    att = head(torch.randn(1, 4, 8, 8))
    fused, _, _ = fuse_predictions(local, global_pred, att, Box(0, 0, 4, 4))
    fused.square().sum().backward()
    assert local.grad.abs().sum() > 0 and global_pred.grad.abs().sum() > 0
    assert head.out.weight.grad.abs().sum() > 0
