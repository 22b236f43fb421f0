"""The one padding function (training crops, tiles, whole images and exported graphs all use it)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from semst.networks.padding import pad_to_multiple, padded_size


def test_repeated_reflection_and_single_pixels() -> None:
    row = torch.tensor([0.0, 1.0, 2.0]).view(1, 1, 1, 3)
    padded = pad_to_multiple(row, 4, min_size=9)  # 1 row: repeated; 3 columns: mirrored twice
    assert padded.shape == (1, 1, 9, 9)  # at least min_size, even where that is not a multiple
    expected = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0])
    assert torch.equal(padded[0, 0], expected.expand(9, 9))
    assert torch.equal(pad_to_multiple(torch.ones(1, 1, 1, 1), 4), torch.ones(1, 1, 8, 8))


@pytest.mark.parametrize(("height", "width"), [(5, 6), (30, 26), (9, 17), (8, 8), (64, 13)])
def test_equals_reflection_padding_where_it_fits(height, width) -> None:
    x = torch.randn(2, 3, height, width)
    out = pad_to_multiple(x, 4)
    ph, pw = padded_size(height, 4), padded_size(width, 4)
    assert out.shape == (2, 3, ph, pw)
    assert torch.equal(out[..., :height, :width], x)
    torch.testing.assert_close(out, F.pad(x, (0, pw - width, 0, ph - height), mode="reflect"), rtol=0, atol=0)


def test_sizes_and_no_copy_when_nothing_is_needed() -> None:
    assert [padded_size(n, 4) for n in (1, 7, 8, 9, 30)] == [8, 8, 8, 12, 32]
    assert padded_size(3, 4, min_size=0) == 4
    x = torch.randn(1, 3, 16, 12)
    assert pad_to_multiple(x, 4) is x
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(x, 0)


def test_traced_padding_follows_the_input_size() -> None:
    """One traced graph pads every size, as the exported translators need."""

    def fn(x):
        return pad_to_multiple(x, 4)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(fn, (torch.randn(1, 3, 10, 14),), check_trace=False)
    for size in ((10, 14), (5, 3), (16, 16), (33, 9)):
        x = torch.randn(1, 3, *size)
        torch.testing.assert_close(traced(x), pad_to_multiple(x, 4), rtol=0, atol=0)
