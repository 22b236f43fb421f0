from __future__ import annotations

import pytest
import torch

from semst.segmentation.network import SegmentationUNet

# torch.jit.* is deprecated in recent torch versions; the network must still script and trace for export.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")


def _net(seed: int = 0, **kwargs) -> SegmentationUNet:
    torch.manual_seed(seed)
    options = {"width": 8, "depth": 3, "norm": "group"} | kwargs
    return SegmentationUNet(5, **options).eval()


@pytest.mark.parametrize(
    "size", [(1, 1), (2, 3), (5, 7), (8, 8), (17, 33), (48, 96), (37, 100), (64, 65)], ids=str
)
@pytest.mark.parametrize("norm", ["group", "batch"])
def test_logits_have_the_input_size(size, norm):
    net = _net(norm=norm)
    with torch.no_grad():
        logits = net(torch.rand(2, 3, *size))
    assert logits.shape == (2, 5, *size)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


@pytest.mark.parametrize("depth", [1, 4])
def test_depths_and_tiny_inputs(depth):
    net = _net(depth=depth)
    with torch.no_grad():
        assert net(torch.rand(1, 3, 3, 2)).shape == (1, 5, 3, 2)
        assert net(torch.rand(1, 3, 31, 45)).shape == (1, 5, 31, 45)


def test_odd_sizes_are_reflection_padded_and_cropped_back():
    """The logits of a 13x21 image are the top-left crop of those of its bottom/right reflection to 16x24."""
    net = _net()
    x = torch.rand(1, 3, 13, 21)
    padded = torch.nn.functional.pad(x, [0, 3, 0, 3], mode="reflect")  # (1, 3, 16, 24), multiples of 2**3
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(padded)[:, :, :13, :21], rtol=0, atol=1e-5)


def test_gradients_reach_every_parameter():
    net = _net().train()
    x = torch.rand(2, 3, 20, 28, requires_grad=True)
    target = torch.randint(0, 5, (2, 20, 28))
    target[0, :4] = 255
    loss = torch.nn.functional.cross_entropy(net(x), target, ignore_index=255)
    loss.backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_same_seed_same_network_and_outputs():
    x = torch.rand(1, 3, 24, 40)
    a, b, c = _net(seed=3), _net(seed=3), _net(seed=4)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert torch.equal(a(x), a(x))
        assert not torch.equal(a(x), c(x))


def test_architecture_rebuilds_the_network():
    net = _net(width=6, depth=2, max_width=12)
    rebuilt = SegmentationUNet(**net.architecture())
    assert rebuilt.architecture() == net.architecture()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in net.state_dict().items()
    }
    # The input normalisation is a constant of the network, not a weight.
    assert not any("mean" in k or "std" in k for k in net.state_dict())


def test_scripted_network_matches_and_accepts_any_size():
    net = _net()
    scripted = torch.jit.script(net)
    for size in [(16, 16), (19, 41), (1, 2)]:
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), net(x), rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_traceable():
    """Tracing works too, but bakes in the padding of the traced size: export with torch.jit.script."""
    net = _net()
    x = torch.rand(1, 3, 24, 32)
    traced = torch.jit.trace(net, x)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), net(x), rtol=0, atol=1e-6)


def test_bad_arguments_and_inputs_are_explained():
    with pytest.raises(ValueError, match="norm"):
        SegmentationUNet(3, norm="instance")
    with pytest.raises(ValueError, match="depth"):
        SegmentationUNet(3, depth=0)
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationUNet(0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        _net()(torch.rand(1, 4, 8, 8))
