"""Tests for semst.data.unpaired: deterministic (epoch, position) items and the step-based batch sampler."""

from __future__ import annotations

from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from semst.data.batch import Batch, Sample, collate
from semst.data.images import ImageLoadError, image_to_tensor
from semst.data.transforms import MultiScaleCrops, SingleScaleCrops
from semst.data.unpaired import StepBatchSampler, UnpairedImages, epoch_of_step, unreadable_images

SMALL = SingleScaleCrops(load_size=36, crop_size=32)


def _write_images(folder: Path, count: int, *, seed: int, size: tuple[int, int] = (40, 40)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"img_{index:02d}.png"
        Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    _write_images(tmp_path / "trainA", 5, seed=0)
    _write_images(tmp_path / "trainB", 3, seed=1)
    return tmp_path / "trainA", tmp_path / "trainB"


def test_length_is_the_larger_domain(folders: tuple[Path, Path]) -> None:
    source, target = folders
    assert len(UnpairedImages(source, target)) == 5
    assert len(UnpairedImages(target, source)) == 5
    truncated = UnpairedImages(source, target, max_dataset_size=2)
    assert len(truncated) == 2
    assert [path.name for path in truncated.source_paths] == ["img_00.png", "img_01.png"]


def test_item_contents(folders: tuple[Path, Path]) -> None:
    dataset = UnpairedImages(*folders, SMALL)
    item = dataset[(3, 4)]
    assert isinstance(item, Sample)
    assert item.source.crop.shape == (3, 32, 32) and item.target.crop.shape == (3, 32, 32)
    assert item.source.global_crop is None and item.source.box is None  # single-scale crops
    assert item.source.crop.dtype == torch.float32
    assert item.source.crop.min() >= -1.0 and item.source.crop.max() <= 1.0
    assert Path(item.source_path).parent == folders[0]
    assert Path(item.target_path).parent == folders[1]
    assert (item.epoch, item.position) == (3, 4)


def test_same_key_same_item_in_fresh_dataset(folders: tuple[Path, Path]) -> None:
    first = UnpairedImages(*folders, SMALL, seed=7)
    second = UnpairedImages(*folders, SMALL, seed=7)
    for key in [(0, 0), (2, 3), (0, 4)]:
        a, b, c = first[key], first[key], second[key]
        for other in (b, c):
            assert torch.equal(a.source.crop, other.source.crop)
            assert torch.equal(a.target.crop, other.target.crop)
            assert (a.source_path, a.target_path) == (other.source_path, other.target_path)


def test_seed_changes_the_data(folders: tuple[Path, Path]) -> None:
    orders = {
        tuple(UnpairedImages(*folders, seed=seed).indices(0, position) for position in range(5))
        for seed in range(4)
    }
    assert len(orders) > 1


def test_every_source_image_once_per_epoch_and_orders_differ(folders: tuple[Path, Path]) -> None:
    dataset = UnpairedImages(*folders, SMALL)
    orders = []
    for epoch in range(4):
        order = [dataset.indices(epoch, position)[0] for position in range(len(dataset))]
        assert sorted(order) == list(range(5))
        orders.append(tuple(order))
    assert len(set(orders)) > 1
    paths = [dataset[(1, position)].source_path for position in range(len(dataset))]
    assert sorted(paths) == sorted(str(path) for path in dataset.source_paths)


def test_smaller_source_domain_is_cycled_evenly(folders: tuple[Path, Path]) -> None:
    source, target = folders
    dataset = UnpairedImages(target, source)  # 3 source images, epoch length 5
    counts = Counter(dataset.indices(0, position)[0] for position in range(5))
    assert set(counts) == {0, 1, 2}
    assert sorted(counts.values()) == [1, 2, 2]


def test_target_is_drawn_at_random(folders: tuple[Path, Path]) -> None:
    dataset = UnpairedImages(*folders)
    targets = [dataset.indices(epoch, position)[1] for epoch in range(6) for position in range(5)]
    assert set(targets) == {0, 1, 2}
    # The same position gets different targets in different epochs.
    assert all(len({dataset.indices(epoch, position)[1] for epoch in range(8)}) > 1 for position in range(5))
    # The documented contract: the target comes from the RNG seeded by (seed, epoch, position).
    expected = int(np.random.default_rng([0, 4, 2]).integers(0, 3))
    assert dataset.indices(4, 2)[1] == expected
    # The target does not follow the source: pairs differ between epochs.
    pairs = {tuple(dataset.indices(epoch, position) for position in range(5)) for epoch in range(6)}
    assert len(pairs) == 6


def test_augmentation_differs_between_domains_and_positions(tmp_path: Path) -> None:
    # One image in both domains: any difference comes from the per-(position, domain) augmentation streams.
    (path,) = _write_images(tmp_path / "only", 1, seed=4, size=(48, 48))
    dataset = UnpairedImages(path, path, SingleScaleCrops(preprocess="crop", crop_size=16, flip=False))
    assert len(dataset) == 1
    crops = {
        getattr(dataset[(epoch, 0)], domain).crop.numpy().tobytes()
        for epoch in range(4)
        for domain in ("source", "target")
    }
    assert len(crops) >= 6


def test_steady_from_epoch_disables_resize_jitter(tmp_path: Path) -> None:
    (path,) = _write_images(tmp_path / "a", 1, seed=5, size=(32, 32))
    crops = SingleScaleCrops(load_size=48, crop_size=32, flip=False, steady_from_epoch=2)
    dataset = UnpairedImages(path, path, crops)
    exact = image_to_tensor(Image.open(path))
    assert crops.load_size_for_epoch(1) == 48 and crops.load_size_for_epoch(2) == 32
    for epoch in (2, 3):
        assert torch.equal(dataset[(epoch, 0)].source.crop, exact)
    for epoch in (0, 1):
        assert not torch.equal(dataset[(epoch, 0)].source.crop, exact)
    jittered = UnpairedImages(path, path, SingleScaleCrops(load_size=48, crop_size=32, flip=False))
    assert not torch.equal(jittered[(3, 0)].source.crop, exact)


def test_missing_and_empty_domains_are_named(tmp_path: Path) -> None:
    _write_images(tmp_path / "A", 1, seed=0)
    (tmp_path / "emptyB").mkdir()
    with pytest.raises(FileNotFoundError, match=r"source.*nowhere"):
        UnpairedImages(tmp_path / "nowhere", tmp_path / "A")
    with pytest.raises(ValueError, match=r"target.*emptyB"):
        UnpairedImages(tmp_path / "A", tmp_path / "emptyB")


def test_invalid_keys_and_arguments(folders: tuple[Path, Path]) -> None:
    dataset = UnpairedImages(*folders)
    with pytest.raises(TypeError, match="epoch, position"):
        dataset[0]
    with pytest.raises(ValueError, match="position"):
        dataset[(0, 5)]
    with pytest.raises(ValueError, match="epoch"):
        dataset[(-1, 0)]
    with pytest.raises(ValueError, match="preprocess"):
        SingleScaleCrops(preprocess="zoom")
    with pytest.raises(ValueError, match="max_dataset_size"):
        UnpairedImages(*folders, max_dataset_size=0)


def test_corrupt_image_raises_with_its_name(tmp_path: Path) -> None:
    _write_images(tmp_path / "A", 1, seed=0)
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    dataset = UnpairedImages(tmp_path / "A", tmp_path / "B")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        dataset[(0, 0)]


def test_image_failing_to_decode_is_replaced_by_the_next_readable_one(folders: tuple[Path, Path]) -> None:
    source, target = folders
    broken = source / "img_01.png"
    broken.write_bytes(broken.read_bytes()[:60])  # the header survives, the pixels do not
    dataset = UnpairedImages(source, target, SMALL, seed=3)
    clean = UnpairedImages(source, target, SMALL, seed=3)
    clean.source_paths[1] = clean.source_paths[2]  # what the replacement must equal
    for position in range(len(dataset)):
        item, expected = dataset[(0, position)], clean[(0, position)]
        assert torch.equal(item.source.crop, expected.source.crop)
        if dataset.indices(0, position)[0] == 1:
            assert item.source_path.endswith("img_02.png")
            assert item.unreadable == ((str(broken), item.unreadable[0][1]),)
            assert "truncated" in item.unreadable[0][1] or "Error" in item.unreadable[0][1]
        else:
            assert item.unreadable == ()
    last = source / "img_04.png"
    last.write_bytes(b"")  # the last image wraps around to the first
    position = next(p for p in range(len(dataset)) if dataset.indices(1, p)[0] == 4)
    assert UnpairedImages(source, target, SMALL).__getitem__((1, position)).source_path.endswith("img_00.png")


def test_unreadable_images_reads_headers_only(tmp_path: Path) -> None:
    good = _write_images(tmp_path, 2, seed=0)
    truncated = good[1]
    truncated.write_bytes(truncated.read_bytes()[:60])  # decodes badly, but the header is fine
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    dangling = tmp_path / "gone.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    bad = unreadable_images([*good, empty, dangling, tmp_path / "missing.png"])
    assert [path for path, _ in bad] == [empty, dangling, tmp_path / "missing.png"]
    assert "nowhere.png" in bad[1][1]


# ------------------------------------------------------------------------------------------------------------
# StepBatchSampler


def test_epoch_of_step() -> None:
    assert [epoch_of_step(step, 3) for step in range(7)] == [0, 0, 0, 1, 1, 1, 2]
    with pytest.raises(ValueError, match="steps_per_epoch"):
        epoch_of_step(1, 0)


def test_keys_for_steps() -> None:
    sampler = StepBatchSampler(5, 2)
    assert sampler.steps_per_epoch == 2  # the incomplete last batch is dropped
    assert list(islice(sampler, 5)) == [
        [(0, 0), (0, 1)],
        [(0, 2), (0, 3)],
        [(1, 0), (1, 1)],
        [(1, 2), (1, 3)],
        [(2, 0), (2, 1)],
    ]


def test_keys_without_drop_last_and_small_datasets() -> None:
    padded = StepBatchSampler(5, 2, drop_last=False)
    assert padded.steps_per_epoch == 3
    assert list(islice(padded, 4))[2:] == [[(0, 4), (0, 0)], [(1, 0), (1, 1)]]
    tiny = StepBatchSampler(3, 4)
    assert tiny.steps_per_epoch == 1
    assert list(islice(tiny, 2)) == [[(0, 0), (0, 1), (0, 2), (0, 0)], [(1, 0), (1, 1), (1, 2), (1, 0)]]


def test_resume_gives_the_same_keys_as_continuing() -> None:
    continuous = list(islice(StepBatchSampler(10, 3), 12))
    resumed = list(islice(StepBatchSampler(10, 3, start_step=7), 5))
    assert resumed == continuous[7:]
    # Iterating again starts again at start_step.
    sampler = StepBatchSampler(10, 3, start_step=4)
    assert list(islice(sampler, 2)) == list(islice(sampler, 2)) == continuous[4:6]


@pytest.mark.parametrize(("dataset_len", "world_size", "batch_size"), [(5, 2, 1), (9, 2, 2), (7, 3, 1)])
def test_ranks_split_the_global_batch(dataset_len: int, world_size: int, batch_size: int) -> None:
    single = StepBatchSampler(dataset_len, batch_size * world_size)
    ranks = [
        StepBatchSampler(dataset_len, batch_size, rank=rank, world_size=world_size)
        for rank in range(world_size)
    ]
    assert all(sampler.steps_per_epoch == single.steps_per_epoch for sampler in ranks)
    for step, expected in enumerate(islice(single, 8)):
        assert [key for sampler in ranks for key in sampler.keys_for_step(step)] == expected


def test_sampler_validates_arguments() -> None:
    with pytest.raises(ValueError, match="rank"):
        StepBatchSampler(5, 1, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        StepBatchSampler(5, 0)
    with pytest.raises(ValueError, match="dataset_len"):
        StepBatchSampler(0, 1)


# ------------------------------------------------------------------------------------------------------------
# DataLoader integration


def _batches(dataset: UnpairedImages, *, num_workers: int, steps: int = 3) -> list[Batch]:
    sampler = StepBatchSampler(len(dataset), 2, start_step=1)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate)
    return list(islice(loader, steps))


def _assert_same_batches(first: list[Batch], second: list[Batch]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for domain in ("source", "target"):
            for name in ("crop", "global_crop", "box"):
                x, y = getattr(getattr(a, domain), name), getattr(getattr(b, domain), name)
                assert (x is None and y is None) or torch.equal(x, y), f"{domain}.{name}"
        assert a.source_paths == b.source_paths and a.target_paths == b.target_paths
        assert torch.equal(a.epoch, b.epoch) and torch.equal(a.position, b.position)


def test_dataloader_batches_do_not_depend_on_workers(folders: tuple[Path, Path]) -> None:
    dataset = UnpairedImages(*folders, SMALL)
    serial = _batches(dataset, num_workers=0)
    batch = serial[0]
    assert batch.source.crop.shape == (2, 3, 32, 32) and batch.target.crop.shape == (2, 3, 32, 32)
    assert isinstance(batch.source_paths, list) and len(batch.source_paths) == 2
    assert batch.epoch.tolist() == [0, 0] and batch.position.tolist() == [2, 3]
    assert serial[1].epoch.tolist() == [1, 1]  # 5 items, global batch 2: two steps per epoch
    _assert_same_batches(serial, _batches(dataset, num_workers=2))
    moved = batch.to("cpu")
    assert torch.equal(moved.source.crop, batch.source.crop) and moved.size == 2


def test_collate_reports_mismatched_sizes(tmp_path: Path) -> None:
    folder = tmp_path / "A"
    folder.mkdir()
    Image.new("RGB", (16, 16)).save(folder / "square.png")
    Image.new("RGB", (24, 16)).save(folder / "wide.png")
    dataset = UnpairedImages(folder, folder, SingleScaleCrops(preprocess="none"))
    # Both source images appear once in an epoch of length 2, so the batch mixes 16x16 and 24x16.
    items = [dataset[(0, position)] for position in range(2)]
    with pytest.raises(ValueError, match=r"different sizes.*(square|wide)\.png"):
        collate(items)
    with pytest.raises(ValueError, match="empty batch"):
        collate([])


def test_worker_errors_keep_their_type(tmp_path: Path) -> None:
    _write_images(tmp_path / "A", 2, seed=0)
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "broken.png").write_bytes(b"garbage")
    dataset = UnpairedImages(tmp_path / "A", tmp_path / "B")
    loader = DataLoader(dataset, batch_sampler=StepBatchSampler(2, 1), num_workers=1, collate_fn=collate)
    with pytest.raises(ImageLoadError, match="broken.png"):
        next(iter(loader))


def test_multiscale_items_and_batches(folders: tuple[Path, Path]) -> None:
    crops = MultiScaleCrops(global_size=16, scale=2, local_size=16)
    dataset = UnpairedImages(*folders, crops)
    item = dataset[(1, 2)]
    for domain in (item.source, item.target):
        assert domain.global_crop.shape == (3, 16, 16) and domain.crop.shape == (3, 16, 16)
        assert domain.box.tolist()[2:] == [8, 8]
    again = UnpairedImages(*folders, crops)[(1, 2)]
    for name in ("crop", "global_crop", "box"):
        assert torch.equal(getattr(item.source, name), getattr(again.source, name))
    batch = collate([dataset[(0, p)] for p in range(3)])
    assert batch.source.global_crop.shape == (3, 3, 16, 16) and batch.target.box.shape == (3, 4)
    assert batch.source.box.dtype == torch.int64
