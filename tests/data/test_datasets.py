"""Tests of semst.data.datasets on tiny fixture trees in the layouts the downloads unpack to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import png
import pytest
from PIL import Image

from semst.data.datasets import (
    DATASETS,
    Cityscapes,
    DatasetError,
    LabelError,
    Sample,
    check,
    dangling_link,
    open_dataset,
    split_pair,
    write_unaligned_maps,
)
from semst.data.images import ImageLoadError
from semst.data.labels import IGNORE_INDEX
from semst.data.synthia_labels import SYNTHIA_PRESENT_TRAIN_IDS, load_synthia_ids, synthia_ids_to_train_ids

H, W = 4, 6


def _write_rgb(
    path: Path, size: tuple[int, int] = (W, H), color: tuple[int, int, int] = (10, 20, 30)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _write_ids(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint8), mode="L").save(path)
    return path


def _write_synthia_label(path: Path, ids: np.ndarray) -> Path:
    """16-bit RGBA PNG, SYNTHIA id in R, an instance id above 255 in G (as the real files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = ids.shape
    pixels = np.zeros((height, width, 4), dtype=np.uint16)
    pixels[..., 0] = ids
    pixels[..., 1] = 300
    pixels[..., 3] = 65535
    with open(path, "wb") as file:
        writer = png.Writer(width, height, bitdepth=16, greyscale=False, alpha=True)
        writer.write(file, pixels.reshape(height, width * 4).tolist())
    return path


# ---------------------------------------------------------------------------------------------------- spec parsing


def test_registry_names() -> None:
    assert {"gta5", "synthia", "cityscapes", "cityscapes_parsing", "maps", "folder"} <= set(DATASETS)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/data/GTA5", "must be written as NAME:PATH"),
        ("gta6:/data/GTA5", "Unknown data set 'gta6'"),
        ("gta5:", "has no path after the colon"),
    ],
)
def test_open_dataset_spec_errors(spec: str, expected: str) -> None:
    with pytest.raises(DatasetError, match=expected) as info:
        open_dataset(spec)
    if "path after" not in expected:
        assert "gta5, synthia, cityscapes" in str(info.value)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"does not exist; expected a folder with the sub-folders images/"):
        open_dataset(f"gta5:{tmp_path / 'nowhere'}")


# ---------------------------------------------------------------------------------------------------- GTA5


def _gta5(root: Path, count: int = 2) -> Path:
    for index in range(1, count + 1):
        _write_rgb(root / "images" / f"{index:05d}.png")
        _write_ids(root / "labels" / f"{index:05d}.png", np.array([[7, 26, 3, 0, 33, 34]] * H))
    return root


def test_gta5_samples_and_labels(tmp_path: Path) -> None:
    root = _gta5(tmp_path / "GTA5")
    dataset = open_dataset(f"gta5:{root}")
    assert dataset.name == "gta5" and dataset.splits == ("all",) and dataset.num_classes == 19
    samples = dataset.samples()
    assert samples[0] == Sample(
        image=root / "images/00001.png",
        label=root / "labels/00001.png",
        relative=Path("images/00001.png"),
        label_relative=Path("labels/00001.png"),
    )
    assert [sample.relative.name for sample in samples] == ["00001.png", "00002.png"]
    label = dataset.load_label(samples[0])
    assert label.dtype == np.uint8 and label.shape == (H, W)
    assert label[0].tolist() == [0, 13, IGNORE_INDEX, IGNORE_INDEX, 18, IGNORE_INDEX]
    assert check(dataset) == samples
    assert dataset.load_image(samples[0]).size == (W, H)


def test_gta5_wrong_root(tmp_path: Path) -> None:
    (tmp_path / "GTA5" / "pictures").mkdir(parents=True)
    with pytest.raises(DatasetError) as info:
        open_dataset(f"gta5:{tmp_path / 'GTA5'}")
    message = str(info.value)
    assert "is not a gta5 data set root" in message and "images/ and labels/" in message
    assert "it holds the folders pictures" in message


def test_gta5_images_without_labels(tmp_path: Path) -> None:
    root = _gta5(tmp_path / "GTA5", count=7)
    for index in range(2, 8):
        (root / "labels" / f"{index:05d}.png").unlink()
    with pytest.raises(DatasetError) as info:
        open_dataset(f"gta5:{root}").samples()
    message = str(info.value)
    assert message.startswith("6 image(s) of the gta5 data set")
    assert f"no label in '{root / 'labels'}'" in message
    assert "images/00002.png, images/00003.png" in message and "images/00006.png, ... (6 in all)" in message
    assert "00007" not in message


def test_gta5_without_label_folder_is_unlabelled(tmp_path: Path) -> None:
    root = tmp_path / "GTA5"
    _write_rgb(root / "images" / "00001.png")
    dataset = open_dataset(f"gta5:{root}")
    [sample] = dataset.samples()
    assert sample.label is None and sample.label_relative is None
    with pytest.raises(DatasetError, match=r"00001.png' of the gta5 data set at .* has no label"):
        dataset.load_label(sample)


def test_empty_image_folder(tmp_path: Path) -> None:
    (tmp_path / "GTA5" / "images").mkdir(parents=True)
    dataset = open_dataset(f"gta5:{tmp_path / 'GTA5'}")
    with pytest.raises(DatasetError, match=r"No images in '.*images': expected images \(.*\.png"):
        dataset.samples()


def test_label_of_wrong_size(tmp_path: Path) -> None:
    root = _gta5(tmp_path / "GTA5", count=3)
    _write_ids(root / "labels" / "00002.png", np.zeros((H, W + 2)))
    dataset = open_dataset(f"gta5:{root}")
    samples = dataset.samples()
    with pytest.raises(DatasetError, match=r"00002.png' is 8x4 \(width x height\) but its image .* is 6x4"):
        dataset.load_label(samples[1])
    with pytest.raises(DatasetError) as info:
        check(dataset, "all")
    message = str(info.value)
    assert message.startswith("1 label(s) of the gta5 data set") and "split 'all'" in message
    assert "labels/00002.png' is 8x4" in message


def test_unknown_split(tmp_path: Path) -> None:
    root = _gta5(tmp_path / "GTA5")
    with pytest.raises(
        DatasetError, match=r"Split 'train' is not available in the gta5 .*available splits: all"
    ):
        open_dataset(f"gta5:{root}", split="train")
    with pytest.raises(DatasetError, match="Split 'val'"):
        open_dataset(f"gta5:{root}").samples("val")


# ---------------------------------------------------------------------------------------------------- SYNTHIA


def test_synthia_16_bit_labels(tmp_path: Path) -> None:
    root = tmp_path / "RAND_CITYSCAPES"
    _write_rgb(root / "RGB" / "0000000.png")
    ids = np.array([[8, 16, 3, 21, 1, 0]] * H)
    label_path = _write_synthia_label(root / "GT" / "LABELS" / "0000000.png", ids)
    # Pillow keeps only the high byte of 16-bit RGB, which would make every id 0.
    with Image.open(label_path) as pillow:
        assert np.asarray(pillow.convert("RGB"))[..., 0].max() == 0
    assert load_synthia_ids(label_path).tolist() == ids.tolist()

    dataset = open_dataset(f"synthia:{root}")
    [sample] = dataset.samples()
    assert sample.relative == Path("RGB/0000000.png") and sample.label_relative == Path(
        "GT/LABELS/0000000.png"
    )
    label = dataset.load_label(sample)
    assert label.dtype == np.uint8
    assert label[0].tolist() == [13, IGNORE_INDEX, 0, 3, 10, IGNORE_INDEX]
    assert dataset.num_classes == 19 and len(dataset.present_classes) == 16
    assert set(range(19)) - set(SYNTHIA_PRESENT_TRAIN_IDS) == {9, 14, 16}


@pytest.mark.parametrize("fast", [True, False], ids=["pyspng", "pypng"])
def test_both_png_decoders_read_the_same_16_bit_ids(tmp_path: Path, monkeypatch, fast: bool) -> None:
    from semst.data import synthia_labels

    if fast:
        pytest.importorskip("pyspng")
    else:
        monkeypatch.setattr(synthia_labels, "_decode_fast", lambda path: None)
    ids = np.array([[8, 16, 3, 21, 1, 0, 300, 65535]] * 3)
    path = _write_synthia_label(tmp_path / "label.png", ids)
    if fast:
        assert synthia_labels._decode_fast(path) is not None  # the fast path really ran
    assert load_synthia_ids(path).tolist() == ids.tolist()
    palette = tmp_path / "palette.png"
    image = Image.fromarray(np.array([[1, 2], [3, 4]], np.uint8)).convert("P")
    image.save(palette)
    assert load_synthia_ids(palette).tolist() == [[1, 2], [3, 4]]  # palette indices, not colours
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageLoadError, match="bad.png"):
        load_synthia_ids(tmp_path / "bad.png")


def test_synthia_mapping_table() -> None:
    expected = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 10, 10: 11, 17: 12, 8: 13, 19: 15}
    expected |= {12: 17, 11: 18}
    ids = np.arange(-1, 300)
    train_ids = synthia_ids_to_train_ids(ids)
    for synthia_id, train_id in zip(ids.tolist(), train_ids.tolist()):
        assert train_id == expected.get(synthia_id, IGNORE_INDEX), synthia_id


def test_synthia_wrong_root(tmp_path: Path) -> None:
    (tmp_path / "GT").mkdir()
    with pytest.raises(
        DatasetError, match=r"not a synthia data set root: expected the sub-folders RGB/ and GT/LABELS/"
    ):
        open_dataset(f"synthia:{tmp_path}")


def test_synthia_corrupt_label(tmp_path: Path) -> None:
    from semst.data.images import ImageLoadError

    _write_rgb(tmp_path / "RGB" / "0000000.png")
    (tmp_path / "GT" / "LABELS").mkdir(parents=True)
    (tmp_path / "GT" / "LABELS" / "0000000.png").write_bytes(b"not a png")
    dataset = open_dataset(f"synthia:{tmp_path}")
    with pytest.raises(ImageLoadError, match=r"0000000.png': not a readable PNG label file"):
        dataset.load_label(dataset.samples()[0])


# ---------------------------------------------------------------------------------------------------- Cityscapes


def _frame(city: str, index: int) -> str:
    return f"{city}_{index:06d}_000019"


def _cityscapes(root: Path) -> Path:
    label_ids = np.array([[7, 26, 3, 24, 23, 0]] * H)  # -> 0, 13, 255, 11, 10, 255
    for split, cities in (("train", ("aachen", "bochum")), ("val", ("lindau",)), ("test", ("berlin",))):
        for city in cities:
            for index in range(2):
                frame = _frame(city, index)
                _write_rgb(root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png")
                gt = root / "gtFine" / split / city
                _write_rgb(gt / f"{frame}_gtFine_color.png", color=(128, 64, 128))
                _write_ids(gt / f"{frame}_gtFine_labelIds.png", label_ids)
    # aachen frames also have train-id files, whose values differ from the conversion to show which is read.
    for index in range(2):
        frame = _frame("aachen", index)
        _write_ids(
            root / "gtFine" / "train" / "aachen" / f"{frame}_gtFine_labelTrainIds.png", np.full((H, W), 5)
        )
    return root


def test_cityscapes_samples_and_labels(tmp_path: Path) -> None:
    root = _cityscapes(tmp_path / "cityscapes")
    dataset = open_dataset(f"cityscapes:{root}")
    assert dataset.splits == ("train", "val", "test") and dataset.split == "train"
    samples = dataset.samples()
    assert [sample.relative.as_posix() for sample in samples] == [
        "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
        "leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png",
        "leftImg8bit/train/bochum/bochum_000000_000019_leftImg8bit.png",
        "leftImg8bit/train/bochum/bochum_000001_000019_leftImg8bit.png",
    ]
    assert samples[0].label_relative == Path(
        "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png"
    )
    assert samples[2].label_relative == Path("gtFine/train/bochum/bochum_000000_000019_gtFine_labelIds.png")
    assert (dataset.load_label(samples[0]) == 5).all()  # labelTrainIds preferred over labelIds
    assert dataset.load_label(samples[2])[0].tolist() == [0, 13, 255, 11, 10, 255]
    assert check(dataset, "val") == dataset.samples("val")
    assert len(dataset.samples("val")) == 2


def test_cityscapes_test_split_is_unlabelled(tmp_path: Path) -> None:
    root = _cityscapes(tmp_path / "cityscapes")
    samples = open_dataset(f"cityscapes:{root}", split="test").samples()
    assert len(samples) == 2 and all(sample.label is None for sample in samples)


def test_cityscapes_without_gtfine_is_unlabelled(tmp_path: Path) -> None:
    root = tmp_path / "cityscapes"
    _write_rgb(root / "leftImg8bit" / "val" / "lindau" / f"{_frame('lindau', 0)}_leftImg8bit.png")
    dataset = Cityscapes(root)
    assert dataset.splits == ("val",) and dataset.split == "val"
    assert [sample.label for sample in dataset.samples()] == [None]


def test_cityscapes_missing_label_and_split(tmp_path: Path) -> None:
    root = _cityscapes(tmp_path / "cityscapes")
    (root / "gtFine/val/lindau/lindau_000001_000019_gtFine_labelIds.png").unlink()
    dataset = open_dataset(f"cityscapes:{root}")
    with pytest.raises(
        DatasetError, match=r"1 image\(s\) .* leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit"
    ):
        dataset.samples("val")
    (tmp_path / "partial" / "leftImg8bit" / "train").mkdir(parents=True)
    partial = open_dataset(f"cityscapes:{tmp_path / 'partial'}")
    with pytest.raises(DatasetError, match=r"Split 'val' .* available splits: train"):
        partial.samples("val")
    with pytest.raises(
        DatasetError, match=r"No images in .*train' or its sub-folders: expected \*_leftImg8bit.png"
    ):
        partial.samples()


def test_cityscapes_wrong_root(tmp_path: Path) -> None:
    _write_rgb(tmp_path / "aachen" / "a_leftImg8bit.png")
    with pytest.raises(DatasetError) as info:
        open_dataset(f"cityscapes:{tmp_path}")
    assert "expected the sub-folders leftImg8bit/{train,val,test}/{city}/" in str(info.value)
    assert "it holds the folders aachen" in str(info.value)


def test_cityscapes_parsing_task(tmp_path: Path) -> None:
    root = _cityscapes(tmp_path / "cityscapes")
    dataset = open_dataset(f"cityscapes_parsing:{root}", split="val")
    samples = dataset.samples()
    assert [sample.relative.as_posix() for sample in samples] == [
        "gtFine/val/lindau/lindau_000000_000019_gtFine_color.png",
        "gtFine/val/lindau/lindau_000001_000019_gtFine_color.png",
    ]
    assert samples[0].label_relative == Path("gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png")
    assert dataset.load_image(samples[0]).getpixel((0, 0)) == (128, 64, 128)
    assert dataset.load_label(samples[0])[0].tolist() == [0, 13, 255, 11, 10, 255]
    assert (dataset.load_label(dataset.samples("train")[0]) == 5).all()


# ---------------------------------------------------------------------------------------------------- Maps


def _side_by_side(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (16, 8), (200, 30, 30))
    image.paste((30, 30, 200), (8, 0, 16, 8))
    image.save(path, quality=95)
    return path


def test_maps_split_pair_and_unaligned_folders(tmp_path: Path) -> None:
    root = tmp_path / "maps"
    for split, names in (("train", ("1", "2")), ("val", ("1",))):
        for name in names:
            _side_by_side(root / split / f"{name}.jpg")
    dataset = open_dataset(f"maps:{root}")
    assert dataset.splits == ("train", "val") and dataset.present_classes == ()
    samples = dataset.samples()
    assert [sample.relative.as_posix() for sample in samples] == ["train/1.jpg", "train/2.jpg"]
    assert all(sample.label is None for sample in samples)

    photo, map_image = split_pair(dataset.load_image(samples[0]))
    assert photo.size == map_image.size == (8, 8)
    # JPEG chroma subsampling blurs the seam, so compare away from it.
    assert np.abs(np.asarray(photo, dtype=int)[:, :6] - (200, 30, 30)).max() < 12
    assert np.abs(np.asarray(map_image, dtype=int)[:, 2:] - (30, 30, 200)).max() < 12

    out = tmp_path / "maps_unaligned"
    assert write_unaligned_maps(dataset, out) == {"train": 2, "val": 1}
    folders = open_dataset(f"folder:{out}")
    assert folders.splits == ("trainA", "trainB", "valA", "valB")
    assert [sample.relative.as_posix() for sample in folders.samples("trainB")] == [
        "trainB/1_B.png",
        "trainB/2_B.png",
    ]
    assert Image.open(out / "valA" / "1_A.png").size == (8, 8)

    with pytest.raises(ValueError, match=r"even width .* got 7x8"):
        split_pair(Image.new("RGB", (7, 8)))
    with pytest.raises(DatasetError, match="has no label"):
        dataset.load_label(samples[0])


# ---------------------------------------------------------------------------------------------------- CUT folders


def test_folder_layout_with_optional_labels(tmp_path: Path) -> None:
    root = tmp_path / "horse2zebra"
    _write_rgb(root / "trainA" / "b.jpg")
    _write_rgb(root / "trainA" / "sub" / "a.png")
    _write_rgb(root / "trainB" / "z.png")
    _write_rgb(root / "testA" / "t.png")
    _write_ids(root / "trainA_labels" / "b.png", np.full((H, W), 3))
    _write_ids(root / "trainA_labels" / "sub" / "a.png", np.full((H, W), 7))
    dataset = open_dataset(f"folder:{root}")
    assert dataset.splits == ("trainA", "trainB", "testA") and dataset.split == "trainA"
    samples = dataset.samples()
    assert [(s.relative.as_posix(), s.label_relative.as_posix()) for s in samples] == [
        ("trainA/b.jpg", "trainA_labels/b.png"),
        ("trainA/sub/a.png", "trainA_labels/sub/a.png"),
    ]
    assert (dataset.load_label(samples[1]) == 7).all()  # folder labels are train ids already
    assert [sample.label for sample in dataset.samples("trainB")] == [None]

    (root / "trainA_labels" / "b.png").unlink()
    with pytest.raises(
        DatasetError, match=r"1 image\(s\) of the folder data set .*trainA_labels.*: trainA/b.jpg\."
    ):
        dataset.samples()
    with pytest.raises(DatasetError, match=r"Split 'valA' .* available splits: trainA, trainB, testA"):
        dataset.samples("valA")
    (root / "testB").mkdir()
    with pytest.raises(DatasetError, match=r"No images in '.*testB' or its sub-folders"):
        open_dataset(f"folder:{root}", split="testB").samples()


def test_folder_wrong_root(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(
        DatasetError,
        match=r"expected one or more of the sub-folders trainA/, trainB/.*holds the folders images",
    ):
        open_dataset(f"folder:{tmp_path}")


# ---------------------------------------------------------------------------------------------------- label checks


def test_check_label_accepts_each_layouts_table(tmp_path: Path) -> None:
    gta = open_dataset(f"gta5:{_gta5(tmp_path / 'GTA5')}")
    cityscapes = open_dataset(f"cityscapes:{_cityscapes(tmp_path / 'cityscapes')}")
    root = tmp_path / "RAND_CITYSCAPES"
    _write_rgb(root / "RGB" / "0000000.png")
    _write_synthia_label(root / "GT" / "LABELS" / "0000000.png", np.array([[8, 16, 3, 21, 1, 22]] * H))
    synthia = open_dataset(f"synthia:{root}")
    for dataset in (gta, cityscapes, synthia):
        for sample in dataset.samples():
            dataset.check_label(sample)


@pytest.mark.parametrize(
    ("layout", "value", "table"),
    [("gta5", 35, "0..34"), ("cityscapes_train_ids", 19, "0..18"), ("synthia", 23, "0..22")],
)
def test_check_label_refuses_ids_outside_the_table(
    tmp_path: Path, layout: str, value: int, table: str
) -> None:
    if layout == "gta5":
        dataset = open_dataset(f"gta5:{_gta5(tmp_path / 'GTA5')}")
        sample = dataset.samples()[0]
        _write_ids(sample.label, np.full((H, W), value))
    elif layout == "synthia":
        root = tmp_path / "RAND_CITYSCAPES"
        _write_rgb(root / "RGB" / "0000000.png")
        _write_synthia_label(root / "GT" / "LABELS" / "0000000.png", np.full((H, W), value))
        dataset = open_dataset(f"synthia:{root}")
        sample = dataset.samples()[0]
    else:
        dataset = open_dataset(f"cityscapes:{_cityscapes(tmp_path / 'cityscapes')}")
        sample = dataset.samples()[0]  # an aachen frame: a labelTrainIds file
        _write_ids(sample.label, np.full((H, W), value))
    with pytest.raises(LabelError, match=rf"holds the ids {value}, .*\({table}, or 255"):
        dataset.check_label(sample)


def test_check_label_names_size_and_decoding_problems(tmp_path: Path) -> None:
    dataset = open_dataset(f"gta5:{_gta5(tmp_path / 'GTA5')}")
    first, second = dataset.samples()
    _write_ids(first.label, np.zeros((H, W + 1)))
    with pytest.raises(LabelError, match=rf"is {W + 1}x{H} .* but its image '{first.image}' is {W}x{H}"):
        dataset.check_label(first)
    second.label.write_bytes(second.label.read_bytes()[:50])
    with pytest.raises(LabelError, match="cannot be decoded") as info:
        dataset.check_label(second)
    assert info.value.path == second.label


def test_dangling_links_are_listed_not_dropped(tmp_path: Path) -> None:
    root = _gta5(tmp_path / "GTA5")
    (root / "images" / "00003.png").symlink_to(tmp_path / "moved.png")
    (root / "labels" / "00003.png").symlink_to(tmp_path / "moved-label.png")
    dataset = open_dataset(f"gta5:{root}")
    samples = dataset.samples()
    assert [sample.relative.name for sample in samples] == ["00001.png", "00002.png", "00003.png"]
    assert (
        dangling_link(samples[2].image)
        == f"a symbolic link to '{tmp_path / 'moved.png'}', which does not exist"
    )
    with pytest.raises(LabelError, match="moved-label.png', which does not exist"):
        dataset.check_label(samples[2])
    folder = tmp_path / "folders"
    _write_rgb(folder / "trainA" / "a.png")
    (folder / "trainA" / "b.png").symlink_to(tmp_path / "nowhere.png")
    assert [s.relative.name for s in open_dataset(f"folder:{folder}").samples()] == ["a.png", "b.png"]
