import numpy as np
import torch

from semst.multiscale import Box, crop_and_resize, sample_multiscale_crops
from semst.multiscale.fusion import ScaleAttentionHead, fuse_predictions


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
    """With identity 'generators', the global prediction brought onto the local crop is the local region of
    the image seen at the global crop's resolution."""
    image = torch.rand(1, 3, 128, 160)
    crops = sample_multiscale_crops(
        128, 160, global_region=128, scale=2, local_size=32, rng=np.random.default_rng(4)
    )
    global_crop = crop_and_resize(image, crops.global_box, 64)  # Y_g = X_g for an identity generator
    local_crop = crop_and_resize(image, crops.local_box)
    _, global_on_local, _ = fuse_predictions(
        local_crop, global_crop, torch.zeros(1, 1, 64, 64), crops.local_in_global
    )
    expected = torch.nn.functional.interpolate(
        crop_and_resize(local_crop, Box(0, 0, 32, 32), 16),
        size=(32, 32),
        mode="bilinear",
        align_corners=False,
    )
    torch.testing.assert_close(global_on_local, expected)


def test_gradients_reach_both_branches_and_the_attention():
    local = torch.rand(1, 3, 8, 8, requires_grad=True)
    global_pred = torch.rand(1, 3, 8, 8, requires_grad=True)
    head = ScaleAttentionHead(4, hidden=4)
    att = head(torch.randn(1, 4, 8, 8))
    fused, _, _ = fuse_predictions(local, global_pred, att, Box(0, 0, 4, 4))
    fused.square().sum().backward()
    assert local.grad.abs().sum() > 0 and global_pred.grad.abs().sum() > 0
    assert head.out.weight.grad.abs().sum() > 0
