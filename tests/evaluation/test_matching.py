"""Tests for semst.evaluation.matching: pairing images with label maps, and predictions with targets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from semst.evaluation.matching import (
    CITYSCAPES_IMAGE_SUFFIX,
    CITYSCAPES_LABEL_SUFFIX,
    match_pairs,
    match_prediction_pairs,
)

CITYSCAPES = {"image_suffix": CITYSCAPES_IMAGE_SUFFIX, "label_suffix": CITYSCAPES_LABEL_SUFFIX}
FRAMES = [
    "frankfurt/frankfurt_000000_000294",
    "frankfurt/frankfurt_000001_000538",
    "lindau/lindau_000000_000019",
]


def _touch(path: Path) -> Path:
    # Matching looks at names only, so empty files are enough.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _cityscapes(tmp_path: Path, frames: list[str] = FRAMES) -> tuple[Path, Path]:
    """leftImg8bit/val and gtFine/val folders laid out as Cityscapes ships them (after createTrainIdLabelImgs)."""
    images, labels = tmp_path / "leftImg8bit" / "val", tmp_path / "gtFine" / "val"
    for frame in frames:
        _touch(images / f"{frame}_leftImg8bit.png")
        for kind in ("color", "instanceIds", "labelIds", "labelTrainIds"):
            _touch(labels / f"{frame}_gtFine_{kind}.png")
        _touch(labels / f"{frame}_gtFine_polygons.json")
    return images, labels


def _relative(pairs: list[tuple[Path, Path]], image_root: Path, label_root: Path) -> list[tuple[str, str]]:
    return [(a.relative_to(image_root).as_posix(), b.relative_to(label_root).as_posix()) for a, b in pairs]


# ------------------------------------------------------------------------------------------------------------
# match_pairs


def test_cityscapes_layout_with_suffixes_and_city_folders(tmp_path: Path) -> None:
    images, labels = _cityscapes(tmp_path)

    pairs = match_pairs(images, labels, **CITYSCAPES)

    assert _relative(pairs, images, labels) == [
        (f"{frame}_leftImg8bit.png", f"{frame}_gtFine_labelTrainIds.png") for frame in FRAMES
    ]


def test_flat_translated_folder_falls_back_to_unique_names(tmp_path: Path) -> None:
    _, labels = _cityscapes(tmp_path)
    translated = tmp_path / "translated"
    for frame in FRAMES:
        _touch(translated / f"{frame.split('/')[1]}_leftImg8bit.jpg")

    pairs = match_pairs(translated, labels, **CITYSCAPES)

    assert _relative(pairs, translated, labels) == [
        (f"{frame.split('/')[1]}_leftImg8bit.jpg", f"{frame}_gtFine_labelTrainIds.png") for frame in FRAMES
    ]


def test_exact_relative_path_wins_over_name_fallback(tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    _touch(images / "a" / "x.png")
    _touch(images / "y.png")
    _touch(labels / "a" / "x.png")
    _touch(labels / "b" / "y.png")

    pairs = match_pairs(images, labels)

    assert _relative(pairs, images, labels) == [("a/x.png", "a/x.png"), ("y.png", "b/y.png")]


def test_same_name_in_two_folders_is_not_matched_by_name(tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    _touch(images / "a" / "x.png")
    _touch(images / "b" / "x.png")
    _touch(labels / "x.png")

    with pytest.raises(ValueError, match=r"2 of 2 images have no label map"):
        match_pairs(images, labels)


def test_list_of_image_files_is_matched_by_name(tmp_path: Path) -> None:
    images, labels = _cityscapes(tmp_path)
    chosen = [images / f"{FRAMES[2]}_leftImg8bit.png", images / f"{FRAMES[0]}_leftImg8bit.png"]

    pairs = match_pairs(chosen, labels, **CITYSCAPES)

    assert pairs == [
        (chosen[0], labels / f"{FRAMES[2]}_gtFine_labelTrainIds.png"),
        (chosen[1], labels / f"{FRAMES[0]}_gtFine_labelTrainIds.png"),
    ]


def test_labels_without_images_are_a_logged_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    images, labels = _cityscapes(tmp_path)
    (images / f"{FRAMES[1]}_leftImg8bit.png").unlink()

    with caplog.at_level(logging.WARNING, logger="semst.evaluation"):
        pairs = match_pairs(images, labels, **CITYSCAPES)

    assert len(pairs) == 2
    assert "1 label maps" in caplog.text
    assert FRAMES[1] in caplog.text


def test_images_without_labels_list_five_names_the_count_and_the_suffixes(tmp_path: Path) -> None:
    images, labels = _cityscapes(tmp_path)
    for i in range(7):
        _touch(images / "extra" / f"extra_{i}_leftImg8bit.png")

    with pytest.raises(ValueError) as error:
        match_pairs(images, labels, **CITYSCAPES)

    message = str(error.value)
    assert "7 of 10 images have no label map" in message
    assert "(7 in all)" in message
    assert "extra_4_leftImg8bit.png" in message
    assert "extra_5_leftImg8bit.png" not in message
    assert "image suffix '_leftImg8bit', label suffix '_gtFine_labelTrainIds'" in message


def test_wrong_label_suffix_finds_no_labels(tmp_path: Path) -> None:
    images, labels = _cityscapes(tmp_path)

    with pytest.raises(
        ValueError,
        match=r"label_suffix '_gtFine_trainIds'.*frankfurt_000000_000294_gtFine_color\.png.*\(12 in all\)",
    ):
        match_pairs(images, labels, image_suffix="_leftImg8bit", label_suffix="_gtFine_trainIds")


def test_without_suffixes_cityscapes_names_do_not_match(tmp_path: Path) -> None:
    images, labels = _cityscapes(tmp_path)

    with pytest.raises(
        ValueError, match=r"3 of 3 images have no label map.*image suffix '', label suffix ''"
    ):
        match_pairs(images, labels)


def test_images_must_end_with_the_image_suffix(tmp_path: Path) -> None:
    images, labels = _cityscapes(tmp_path)
    _touch(images / "frankfurt" / "stray.png")

    with pytest.raises(ValueError, match=r"image_suffix '_leftImg8bit'.*stray\.png"):
        match_pairs(images, labels, **CITYSCAPES)


def test_duplicate_stems_are_an_error(tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    _touch(images / "a.png")
    _touch(images / "a.jpg")
    _touch(labels / "a.png")

    with pytest.raises(ValueError, match=r"same name apart from the extension.*: a \(1 in all\)"):
        match_pairs(images, labels)


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    images, labels = _cityscapes(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(FileNotFoundError, match=r"image folder '.*nowhere' does not exist"):
        match_pairs(tmp_path / "nowhere", labels, **CITYSCAPES)
    with pytest.raises(FileNotFoundError, match=r"label folder '.*nowhere' does not exist"):
        match_pairs(images, tmp_path / "nowhere", **CITYSCAPES)
    with pytest.raises(ValueError, match="image folder .* holds no images"):
        match_pairs(empty, labels, **CITYSCAPES)
    with pytest.raises(ValueError, match="label folder .* holds no images"):
        match_pairs(images, empty, **CITYSCAPES)
    with pytest.raises(ValueError, match="list of image files is empty"):
        match_pairs([], labels)


# ------------------------------------------------------------------------------------------------------------
# match_prediction_pairs


def test_prediction_pairs_match_any_extension_in_nested_folders(tmp_path: Path) -> None:
    preds, targets = tmp_path / "fake", tmp_path / "real"
    for name in ("1", "2", "sub/3"):
        _touch(preds / f"{name}.png")
        _touch(targets / f"{name}.jpg")

    pairs = match_prediction_pairs(preds, targets)

    assert _relative(pairs, preds, targets) == [
        ("1.png", "1.jpg"),
        ("2.png", "2.jpg"),
        ("sub/3.png", "sub/3.jpg"),
    ]


def test_prediction_pairs_with_maps_suffixes(tmp_path: Path) -> None:
    preds, targets = tmp_path / "translated", tmp_path / "testB"
    for i in (1, 10):
        _touch(preds / f"{i}_A.png")
        _touch(targets / f"{i}_B.jpg")

    pairs = match_prediction_pairs(preds, targets, pred_suffix="_A", target_suffix="_B")

    assert _relative(pairs, preds, targets) == [("10_A.png", "10_B.jpg"), ("1_A.png", "1_B.jpg")]


def test_prediction_pairs_need_partners_on_both_sides(tmp_path: Path) -> None:
    preds, targets = tmp_path / "fake", tmp_path / "real"
    _touch(preds / "1.png")
    _touch(targets / "1.png")
    _touch(targets / "2.png")

    with pytest.raises(ValueError, match=r"1 of 2 targets have no prediction.*2\.png"):
        match_prediction_pairs(preds, targets)

    _touch(preds / "2.png")
    _touch(preds / "3.png")
    with pytest.raises(ValueError, match=r"1 of 3 predictions have no target.*3\.png"):
        match_prediction_pairs(preds, targets)


def test_prediction_pairs_errors(tmp_path: Path) -> None:
    preds, targets = tmp_path / "fake", tmp_path / "real"
    _touch(preds / "1.png")
    _touch(targets / "1_B.png")

    with pytest.raises(FileNotFoundError, match="target folder"):
        match_prediction_pairs(preds, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="must be a folder"):
        match_prediction_pairs(preds / "1.png", targets)
    with pytest.raises(ValueError, match=r"Prediction names must end with the suffix '_A'.*1\.png"):
        match_prediction_pairs(preds, targets, pred_suffix="_A", target_suffix="_B")
