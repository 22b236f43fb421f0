"""Tests for semst.data.labels: the Cityscapes table, id conversions, colours, and label-map files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semst.data.images import ImageLoadError
from semst.data.labels import (
    CITYSCAPES_LABELS,
    IGNORE_INDEX,
    NUM_TRAIN_IDS,
    TRAIN_ID_COLORS,
    TRAIN_ID_NAMES,
    CityscapesLabel,
    colorize,
    decolorize,
    ids_to_train_ids,
    load_label_map,
    save_label_map,
)

# ------------------------------------------------------------------------------------------------------------
# The table


def test_table_has_ids_0_to_33_then_the_license_plate() -> None:
    assert [label.id for label in CITYSCAPES_LABELS] == [*range(34), -1]
    assert CITYSCAPES_LABELS[-1].name == "license plate"
    assert len({label.name for label in CITYSCAPES_LABELS}) == 35


def test_known_rows_match_cityscapes_scripts() -> None:
    by_id = {label.id: label for label in CITYSCAPES_LABELS}
    assert by_id[7] == CityscapesLabel("road", 7, 0, "flat", 1, False, False, (128, 64, 128))
    assert by_id[26] == CityscapesLabel("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142))
    assert by_id[0] == CityscapesLabel("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0))
    expected_train_ids = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10}
    expected_train_ids |= {24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for label_id in range(34):
        assert by_id[label_id].train_id == expected_train_ids.get(label_id, 255), label_id
        # The official evaluation ignores exactly the classes without a train id.
        assert by_id[label_id].ignore_in_eval == (label_id not in expected_train_ids)


def test_labels_are_frozen() -> None:
    with pytest.raises(AttributeError):
        CITYSCAPES_LABELS[7].train_id = 3  # type: ignore[misc]


def test_train_id_names_and_colors() -> None:
    assert IGNORE_INDEX == 255
    assert NUM_TRAIN_IDS == 19
    assert TRAIN_ID_NAMES == (
        "road",
        "sidewalk",
        "building",
        "wall",
        "fence",
        "pole",
        "traffic light",
        "traffic sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    )
    assert len(TRAIN_ID_COLORS) == 19
    assert len(set(TRAIN_ID_COLORS)) == 19  # decolorize needs distinct colours
    assert TRAIN_ID_COLORS[0] == (128, 64, 128)
    assert TRAIN_ID_COLORS[1] == (244, 35, 232)
    assert TRAIN_ID_COLORS[2] == (70, 70, 70)
    assert TRAIN_ID_COLORS[5] == (153, 153, 153)
    assert TRAIN_ID_COLORS[6] == (250, 170, 30)
    assert TRAIN_ID_COLORS[7] == (220, 220, 0)
    assert TRAIN_ID_COLORS[8] == (107, 142, 35)
    assert TRAIN_ID_COLORS[9] == (152, 251, 152)
    assert TRAIN_ID_COLORS[10] == (70, 130, 180)
    assert TRAIN_ID_COLORS[11] == (220, 20, 60)
    assert TRAIN_ID_COLORS[13] == (0, 0, 142)
    assert TRAIN_ID_COLORS[18] == (119, 11, 32)


# ------------------------------------------------------------------------------------------------------------
# Conversions


def test_ids_to_train_ids_maps_known_ids_and_ignores_the_rest() -> None:
    label_ids = np.array([[0, 7, 8, 33], [26, 34, 255, 6]], dtype=np.uint8)
    expected = np.array([[255, 0, 1, 18], [13, 255, 255, 255]], dtype=np.uint8)

    train_ids = ids_to_train_ids(label_ids)

    assert train_ids.dtype == np.uint8
    np.testing.assert_array_equal(train_ids, expected)


def test_ids_to_train_ids_ignores_negative_and_large_ids() -> None:
    label_ids = np.array([-1, 1000, 24, 300], dtype=np.int64)

    np.testing.assert_array_equal(ids_to_train_ids(label_ids), [255, 255, 11, 255])


def test_ids_to_train_ids_refuses_floats() -> None:
    with pytest.raises(TypeError, match="integer"):
        ids_to_train_ids(np.array([7.0]))


def test_colorize_paints_train_ids_and_ignored_pixels_black() -> None:
    train_ids = np.array([[0, 13], [255, 18]], dtype=np.uint8)

    rgb = colorize(train_ids)

    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, [[[128, 64, 128], [0, 0, 142]], [[0, 0, 0], [119, 11, 32]]])


def test_colorize_decolorize_round_trip() -> None:
    train_ids = np.array([[*range(19), 255]], dtype=np.uint8)  # (1, 20)

    np.testing.assert_array_equal(decolorize(colorize(train_ids)), train_ids)
    np.testing.assert_array_equal(decolorize(Image.fromarray(colorize(train_ids))), train_ids)


def test_decolorize_maps_unknown_colours_to_ignore() -> None:
    # An off-by-one road colour, the colour of "dynamic" (not evaluated), black, and a true sky pixel.
    rgb = np.array([[[128, 64, 129], [111, 74, 0], [0, 0, 0], [70, 130, 180]]], dtype=np.uint8)

    np.testing.assert_array_equal(decolorize(rgb), [[255, 255, 255, 10]])


def test_decolorize_refuses_wrong_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        decolorize(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="mode 'L'"):
        decolorize(Image.new("L", (2, 2)))


# ------------------------------------------------------------------------------------------------------------
# Files

VALUES = np.array([[0, 1, 2], [18, 255, 7]], dtype=np.uint8)


def test_save_and_load_round_trip_in_mode_l(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "map.png"

    save_label_map(VALUES.astype(np.int64), path)

    with Image.open(path) as stored:
        assert stored.mode == "L"
    loaded = load_label_map(path)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, VALUES)
    assert [p.name for p in path.parent.iterdir()] == ["map.png"]  # no temporary file left


def test_save_with_palette_shows_colours_and_loads_ids(tmp_path: Path) -> None:
    path = tmp_path / "map.png"

    save_label_map(VALUES, path, palette=True)

    with Image.open(path) as stored:
        assert stored.mode == "P"
        np.testing.assert_array_equal(np.asarray(stored.convert("RGB")), colorize(VALUES))
    np.testing.assert_array_equal(load_label_map(path), VALUES)


def test_load_palette_image_returns_indices_not_colours(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    image = Image.frombytes("P", (3, 2), VALUES.tobytes())
    image.putpalette(bytes(range(256)) * 3)  # arbitrary colours
    image.save(path)

    np.testing.assert_array_equal(load_label_map(path), VALUES)


def test_load_16_bit_and_32_bit_maps(tmp_path: Path) -> None:
    path16 = tmp_path / "map16.png"
    Image.fromarray(VALUES.astype(np.uint16)).save(path16)
    path32 = tmp_path / "map32.tif"
    Image.fromarray(VALUES.astype(np.int32)).save(path32)
    with Image.open(path16) as stored:
        assert stored.mode == "I;16"

    np.testing.assert_array_equal(load_label_map(path16), VALUES)
    np.testing.assert_array_equal(load_label_map(path32), VALUES)


def test_load_16_bit_map_with_large_values_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(np.array([[0, 300]], dtype=np.uint16)).save(path)

    with pytest.raises(ValueError, match=r"big\.png.*from 0 to 300"):
        load_label_map(path)


def test_load_refuses_rgb_and_points_to_decolorize(tmp_path: Path) -> None:
    path = tmp_path / "x_gtFine_color.png"
    Image.fromarray(colorize(VALUES)).save(path)

    with pytest.raises(ValueError, match="colour label map") as error:
        load_label_map(path)
    assert "x_gtFine_color.png" in str(error.value)
    assert "decolorize" in str(error.value)


def test_load_refuses_other_modes(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.new("LA", (2, 2)).save(path)

    with pytest.raises(ValueError, match=r"la\.png.*mode 'LA'"):
        load_label_map(path)


def test_load_missing_or_corrupt_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="missing.png"):
        load_label_map(tmp_path / "missing.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ImageLoadError, match="broken.png"):
        load_label_map(broken)


def test_save_refuses_lossy_formats_bad_values_and_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lossy"):
        save_label_map(VALUES, tmp_path / "map.jpg")
    with pytest.raises(ValueError, match="from -1 to 256"):
        save_label_map(np.array([[-1, 256]]), tmp_path / "map.png")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        save_label_map(np.zeros((2, 2, 3), dtype=np.uint8), tmp_path / "map.png")
    with pytest.raises(TypeError, match="integer"):
        save_label_map(np.zeros((2, 2)), tmp_path / "map.png")
    assert list(tmp_path.iterdir()) == []
