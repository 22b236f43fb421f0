"""Tests for semst.networks.projection: location sampling and the per-tap MLP projection head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semst.networks import PatchProjector, ResnetGenerator, sample_locations

CHANNELS = {"input": 3, "down1": 8, "res1": 16}


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def random_features(batch: int = 2, size: int = 6) -> dict[str, torch.Tensor]:
    return {tap: torch.randn(batch, width, size, size) for tap, width in CHANNELS.items()}


# --- sample_locations -------------------------------------------------------------------------------------


def test_sample_locations_rows_are_prefixes_of_randperm() -> None:
    locations = sample_locations(50, 7, generators(3, 4))
    assert locations.shape == (2, 7) and locations.dtype == torch.int64
    for row, seed in zip(locations, (3, 4), strict=True):
        expected = torch.randperm(50, generator=torch.Generator().manual_seed(seed))[:7]
        assert torch.equal(row, expected)
        assert len(set(row.tolist())) == 7  # without replacement


def test_sample_locations_per_image_independent_of_batch_composition() -> None:
    alone = sample_locations(64, 10, generators(11))
    together = sample_locations(64, 10, generators(5, 11, 7))
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], together[1])  # different images get different positions
    assert torch.equal(sample_locations(64, 10, generators(5, 11, 7)), together)  # reproducible


def test_sample_locations_caps_at_number_of_positions() -> None:
    locations = sample_locations(9, 256, generators(0))
    assert locations.shape == (1, 9)
    assert sorted(locations[0].tolist()) == list(range(9))


def test_sample_locations_errors() -> None:
    with pytest.raises(ValueError, match="num_patches >= 1"):
        sample_locations(10, 0, generators(0))
    with pytest.raises(ValueError, match="one torch.Generator per image"):
        sample_locations(10, 3, [])
    with pytest.raises(ValueError, match="CPU torch.Generator"):
        sample_locations(10, 3, [0])  # type: ignore[list-item]


# --- PatchProjector ---------------------------------------------------------------------------------------


def test_heads_exist_after_construction_and_an_optimizer_can_be_built() -> None:
    projector = PatchProjector(CHANNELS, dim=32)
    assert projector.tap_names == ("input", "down1", "res1")
    assert sum(p.numel() for p in projector.parameters()) == sum(
        (width * 32 + 32) + (32 * 32 + 32) for width in CHANNELS.values()
    )
    optimizer = torch.optim.Adam(projector.parameters(), lr=2e-4)
    assert len(optimizer.param_groups[0]["params"]) == 4 * len(CHANNELS)
    head = projector.heads["down1"]
    assert isinstance(head[0], nn.Linear) and head[0].in_features == 8 and head[0].out_features == 32
    assert isinstance(head[1], nn.ReLU)
    assert isinstance(head[2], nn.Linear) and head[2].in_features == 32 and head[2].out_features == 32
    assert torch.count_nonzero(head[0].bias) == 0  # init_weights: zero bias


def test_projector_from_generator_taps() -> None:
    generator = ResnetGenerator(base_channels=4, num_blocks=1)
    taps = ("input", "down1", "res1")
    projector = PatchProjector(generator.tap_channels(taps), dim=8)
    features = generator.encode(torch.randn(1, 3, 16, 16), taps)
    locations = {
        tap: sample_locations(f.shape[2] * f.shape[3], 5, generators(0)) for tap, f in features.items()
    }
    outputs = projector(features, locations)
    assert {tap: tuple(v.shape) for tap, v in outputs.items()} == {tap: (1, 5, 8) for tap in taps}


def test_output_shape_and_unit_norm() -> None:
    torch.manual_seed(0)
    features = random_features()
    locations = {tap: sample_locations(36, 10, generators(1, 2)) for tap in CHANNELS}
    # With CUT's init (gain 0.02) the raw MLP outputs are tiny (norm ~1e-4), so CUT's eps of 1e-7 shows at the
    # 1e-3 level; with gain 1 the outputs are unit norm to float precision.
    for gain, tolerance in ((0.02, 3e-3), (1.0, 1e-5)):
        projector = PatchProjector(CHANNELS, dim=16, init_gain=gain)
        outputs = projector(features, locations)
        assert tuple(outputs) == tuple(CHANNELS)
        for embedding in outputs.values():
            assert embedding.shape == (2, 10, 16)
            torch.testing.assert_close(embedding.norm(dim=-1), torch.ones(2, 10), atol=tolerance, rtol=0)


def test_matches_manual_indexing_and_same_locations_pick_same_positions() -> None:
    torch.manual_seed(0)
    projector = PatchProjector(CHANNELS, dim=16)
    source = random_features()
    translated = random_features()
    locations = {tap: sample_locations(36, 5, generators(8, 9)) for tap in CHANNELS}
    out_source = projector(source, locations)
    out_translated = projector(translated, locations)
    for tap in CHANNELS:
        for features, output in ((source, out_source), (translated, out_translated)):
            for b in range(2):
                rows, cols = locations[tap][b] // 6, locations[tap][b] % 6
                picked = features[tap][b, :, rows, cols].T  # (P, C)
                expected = projector.heads[tap](picked)
                expected = expected / (expected.norm(dim=-1, keepdim=True) + 1e-7)
                torch.testing.assert_close(output[tap][b], expected)

    # Identical feature vectors at the sampled positions give identical embeddings for both feature maps.
    tap = "down1"
    copied = {name: value.clone() for name, value in translated.items()}
    index = locations[tap]  # (B, P)
    flat_source = source[tap].flatten(2)  # (B, C, HW)
    flat_copied = copied[tap].flatten(2)
    for b in range(2):
        flat_copied[b][:, index[b]] = flat_source[b][:, index[b]]
    torch.testing.assert_close(projector(copied, locations)[tap], out_source[tap])


def test_shared_one_dimensional_locations_broadcast_over_the_batch() -> None:
    projector = PatchProjector({"res1": 16}, dim=8)
    features = {"res1": torch.randn(3, 16, 4, 4)}
    shared = torch.tensor([0, 5, 15])
    torch.testing.assert_close(
        projector(features, {"res1": shared})["res1"],
        projector(features, {"res1": shared.expand(3, 3)})["res1"],
    )


def test_gradients_reach_mlp_and_features() -> None:
    projector = PatchProjector(CHANNELS, dim=16)
    features = {tap: value.requires_grad_() for tap, value in random_features().items()}
    locations = {tap: sample_locations(36, 4, generators(0, 1)) for tap in CHANNELS}
    outputs = projector(features, locations)
    sum((output * torch.randn_like(output)).sum() for output in outputs.values()).backward()
    for name, parameter in projector.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    for tap, feature in features.items():
        grad_map = feature.grad.abs().sum(1).flatten(1)  # (B, HW)
        for b in range(2):
            sampled = torch.zeros(36, dtype=torch.bool)
            sampled[locations[tap][b]] = True
            assert (grad_map[b][sampled] > 0).all(), tap
            assert (grad_map[b][~sampled] == 0).all(), tap  # only the sampled positions get gradient


def test_subset_of_taps_and_order_follow_features() -> None:
    projector = PatchProjector(CHANNELS, dim=4)
    features = random_features()
    locations = {tap: sample_locations(36, 3, generators(0, 1)) for tap in CHANNELS}
    outputs = projector({"res1": features["res1"], "input": features["input"]}, locations)
    assert tuple(outputs) == ("res1", "input")


def test_validation_errors() -> None:
    projector = PatchProjector(CHANNELS, dim=4)
    features = random_features(batch=2, size=6)
    good = {tap: sample_locations(36, 3, generators(0, 1)) for tap in CHANNELS}

    with pytest.raises(ValueError, match=r"Unknown tap 'res5'.*'input', 'down1', 'res1'"):
        projector({"res5": features["res1"]}, {"res5": good["res1"]})
    with pytest.raises(ValueError, match="No locations given for tap 'down1'"):
        projector(features, {"input": good["input"], "res1": good["res1"]})
    with pytest.raises(ValueError, match=r"must lie in \[0, 36\)"):
        projector(features, {**good, "down1": torch.tensor([[0, 36], [1, 2]])})
    with pytest.raises(ValueError, match=r"must lie in \[0, 36\)"):
        projector(features, {**good, "down1": torch.tensor([[0, -1], [1, 2]])})
    with pytest.raises(ValueError, match="batch size of the features is 2"):
        projector(features, {**good, "res1": sample_locations(36, 3, generators(0, 1, 2))})
    with pytest.raises(ValueError, match="integer tensor"):
        projector(features, {**good, "res1": good["res1"].float()})
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\)"):
        projector({"down1": torch.randn(2, 3, 6, 6)}, good)
    with pytest.raises(ValueError, match="at least one tap"):
        PatchProjector({})
    with pytest.raises(ValueError, match="without '.'"):
        PatchProjector({"down.1": 3})
