"""Tests for semst.data.images: finding, loading (every Pillow mode), atomic saving, tensor conversion."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semst.data.images import (
    IMAGE_EXTENSIONS,
    ImageLoadError,
    convert_to_rgb,
    find_images,
    image_to_tensor,
    load_rgb,
    save_image,
    tensor_to_image,
)

# ------------------------------------------------------------------------------------------------------------
# find_images


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_find_images_recursive_sorted_case_insensitive_and_skips_hidden(tmp_path: Path) -> None:
    for relative in [
        "b.png",
        "A.JPG",
        "sub/f.jpeg",
        "sub/deeper/d.JpG",
        "sub/c.PNG",
        "sub/x.webp",
        "z.TIFF",
        ".hidden.png",
        ".hiddendir/e.png",
        "sub/.cache/g.png",
        "notes.txt",
        "sub/image.png.bak",
    ]:
        _touch(tmp_path / relative)

    found = find_images(tmp_path)

    relative = [path.relative_to(tmp_path).as_posix() for path in found]
    assert relative == [
        "A.JPG",
        "b.png",
        "sub/c.PNG",
        "sub/deeper/d.JpG",
        "sub/f.jpeg",
        "sub/x.webp",
        "z.TIFF",
    ]
    assert all(path.parent == tmp_path or tmp_path in path.parents for path in found)


def test_find_images_accepts_string_root_and_single_file(tmp_path: Path) -> None:
    image = tmp_path / "one.Png"
    _touch(image)
    assert find_images(str(image)) == [image]
    assert find_images(str(tmp_path)) == [image]


def test_find_images_survives_symlink_cycle(tmp_path: Path) -> None:
    _touch(tmp_path / "a.png")
    _touch(tmp_path / "sub" / "b.png")
    try:
        os.symlink(tmp_path, tmp_path / "sub" / "loop", target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available")
    relative = [path.relative_to(tmp_path).as_posix() for path in find_images(tmp_path)]
    assert relative == ["a.png", "sub/b.png"]


def test_find_images_follows_linked_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _touch(outside / "c.png")
    root = tmp_path / "root"
    root.mkdir()
    try:
        os.symlink(outside, root / "linked", target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available")
    assert find_images(root) == [root / "linked" / "c.png"]


def test_find_images_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        find_images(missing)


def test_find_images_empty_directory_lists_extensions(tmp_path: Path) -> None:
    empty = tmp_path / "empty-folder"
    _touch(empty / "readme.txt")
    _touch(empty / ".hidden.png")
    with pytest.raises(ValueError) as info:
        find_images(empty)
    message = str(info.value)
    assert "empty-folder" in message
    assert all(extension in message for extension in IMAGE_EXTENSIONS)


def test_find_images_non_image_file(tmp_path: Path) -> None:
    text = tmp_path / "data.csv"
    _touch(text)
    with pytest.raises(ValueError, match="data.csv"):
        find_images(text)


# ------------------------------------------------------------------------------------------------------------
# load_rgb and convert_to_rgb


def _write_png16(path: Path, values: np.ndarray, color_type: int) -> None:
    """Writes a 16-bit PNG by hand (Pillow cannot write 16-bit colour PNGs)."""
    height, width = values.shape[:2]
    rows = b"".join(b"\x00" + values[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _palette_image(transparent: bool) -> Image.Image:
    image = Image.fromarray(np.array([[0, 1], [1, 2]], dtype=np.uint8), mode="L").convert("P")
    image.putpalette([200, 10, 20, 5, 250, 6, 7, 8, 240])
    if transparent:
        image.info["transparency"] = 0
    return image


def _case_1(path: Path) -> np.ndarray:
    Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8)).convert("1").save(path / "bw.png")
    return np.array([[0, 255], [255, 0]])


def _case_l(path: Path) -> np.ndarray:
    Image.fromarray(np.array([[0, 77], [128, 255]], dtype=np.uint8)).save(path / "gray.png")
    return np.array([[0, 77], [128, 255]])


def _case_pgm(path: Path) -> np.ndarray:
    Image.fromarray(np.array([[3, 77]], dtype=np.uint8)).save(path / "gray.pgm")
    return np.array([[3, 77]])


def _case_la(path: Path) -> np.ndarray:
    Image.new("LA", (2, 1), (100, 0)).save(path / "gray_alpha.png")
    return np.array([[100, 100]])


def _case_p(path: Path) -> np.ndarray:
    _palette_image(transparent=False).save(path / "palette.png")
    return np.array([[[200, 10, 20], [5, 250, 6]], [[5, 250, 6], [7, 8, 240]]])


def _case_p_transparent(path: Path) -> np.ndarray:
    _palette_image(transparent=True).save(path / "palette_transparent.png")
    # The transparent entry keeps its palette colour: alpha is dropped, not composited.
    return np.array([[[200, 10, 20], [5, 250, 6]], [[5, 250, 6], [7, 8, 240]]])


def _case_rgba(path: Path) -> np.ndarray:
    pixels = np.array([[[10, 20, 30, 0], [40, 50, 60, 128], [70, 80, 90, 255]]], dtype=np.uint8)
    Image.fromarray(pixels, mode="RGBA").save(path / "alpha.png")
    return pixels[..., :3]


def _case_cmyk(path: Path) -> np.ndarray:
    image = Image.new("CMYK", (2, 1))
    image.putpixel((0, 0), (0, 255, 255, 0))
    image.putpixel((1, 0), (0, 0, 0, 255))
    image.save(path / "cmyk.tif")
    return np.array([[[255, 0, 0], [0, 0, 0]]])


def _case_i16(path: Path) -> np.ndarray:
    values = np.array([[0, 32768, 65535, 257 * 100]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    image.save(path / "depth16.png")
    return np.array([[0, 128, 255, 100]])


def _case_i16_tiff(path: Path) -> np.ndarray:
    Image.fromarray(np.array([[65535, 32768, 257]], dtype=np.uint16)).save(path / "depth16.tif")
    return np.array([[255, 128, 1]])


def _case_i32(path: Path) -> np.ndarray:
    values = np.array([[0, 2**31 - 1, -5, 2**30, 65535]], dtype=np.int32)
    image = Image.fromarray(values)
    assert image.mode == "I"
    image.save(path / "int32.tif")
    # A 32-bit file is scaled by its 31 usable bits, so 16-bit-sized values become (nearly) black.
    return np.array([[0, 255, 0, 128, 0]])


def _case_f_unit(path: Path) -> np.ndarray:
    Image.fromarray(np.array([[0.0, 0.5, 1.0, -0.25]], dtype=np.float32)).save(path / "float_unit.tif")
    return np.array([[0, 128, 255, 0]])


def _case_f_bytes(path: Path) -> np.ndarray:
    Image.fromarray(np.array([[0.0, 100.4, 300.0, -4.0]], dtype=np.float32)).save(path / "float_bytes.tif")
    return np.array([[0, 100, 255, 0]])


def _case_rgb16(path: Path) -> np.ndarray:
    values = np.array([[[65535, 32768, 0], [257 * 100, 257 * 200, 257 * 3]]], dtype=np.uint16)
    _write_png16(path / "rgb16.png", values, color_type=2)
    return np.array([[[255, 128, 0], [100, 200, 3]]])


def _case_rgba16(path: Path) -> np.ndarray:
    values = np.array([[[65535, 32768, 0, 0]]], dtype=np.uint16)
    _write_png16(path / "rgba16.png", values, color_type=6)
    return np.array([[[255, 128, 0]]])


LOAD_CASES = {
    "1": _case_1,
    "L": _case_l,
    "L-pgm": _case_pgm,
    "LA": _case_la,
    "P": _case_p,
    "P-transparency": _case_p_transparent,
    "RGBA": _case_rgba,
    "CMYK": _case_cmyk,
    "I;16": _case_i16,
    "I;16-tiff": _case_i16_tiff,
    "I": _case_i32,
    "F-unit": _case_f_unit,
    "F-bytes": _case_f_bytes,
    "RGB-16bit": _case_rgb16,
    "RGBA-16bit": _case_rgba16,
}


@pytest.mark.parametrize("case", sorted(LOAD_CASES))
def test_load_rgb_converts_every_mode(tmp_path: Path, case: str) -> None:
    expected = LOAD_CASES[case](tmp_path)
    (path,) = tmp_path.iterdir()

    image = load_rgb(path)

    assert image.mode == "RGB"
    pixels = np.asarray(image)
    if expected.ndim == 2:  # grayscale: the value is repeated over the channels
        expected = np.repeat(expected[..., None], 3, axis=-1)
    np.testing.assert_array_equal(pixels, expected)


def test_load_rgb_returns_rgb_unchanged(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / "rgb.png")), pixels)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_convert_to_rgb_scales_16_bit_in_memory(mode: str) -> None:
    dtype = ">u2" if mode == "I;16B" else "<u2"
    image = Image.fromarray(np.array([[65535, 32768, 0]], dtype=dtype))
    if image.mode != mode:
        image = Image.frombytes(mode, image.size, np.array([[65535, 32768, 0]], dtype=dtype).tobytes())
    assert image.mode == mode
    np.testing.assert_array_equal(np.asarray(convert_to_rgb(image))[..., 0], [[255, 128, 0]])


def test_convert_to_rgb_mode_i_without_metadata() -> None:
    sixteen_bit = Image.fromarray(np.array([[65535, 32768]], dtype=np.int32))
    np.testing.assert_array_equal(np.asarray(convert_to_rgb(sixteen_bit))[..., 0], [[255, 128]])
    wide = Image.fromarray(np.array([[2**31 - 1, 2**30, -7]], dtype=np.int32))
    np.testing.assert_array_equal(np.asarray(convert_to_rgb(wide))[..., 0], [[255, 128, 0]])


def test_convert_to_rgb_ycbcr_and_float_nan() -> None:
    ycbcr = Image.new("YCbCr", (1, 1), (128, 128, 128))
    np.testing.assert_array_equal(np.asarray(convert_to_rgb(ycbcr)), [[[128, 128, 128]]])
    floats = Image.fromarray(np.array([[np.nan, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(convert_to_rgb(floats))[..., 0], [[0, 255]])


def _orientation_test_image() -> Image.Image:
    """A 40x20 blue image with a red 10x10 square in its top-left corner."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[..., 2] = 255
    pixels[:10, :10] = (255, 0, 0)
    return Image.fromarray(pixels)


@pytest.mark.parametrize(
    ("orientation", "red_corner"),
    [
        (6, (17, 2)),  # "rotate 90 clockwise to display": the top-left corner moves to the top right
        (8, (2, 37)),  # "rotate 90 counter-clockwise to display": it moves to the bottom left
    ],
)
def test_load_rgb_applies_exif_orientation(
    tmp_path: Path, orientation: int, red_corner: tuple[int, int]
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation  # the Orientation tag
    path = tmp_path / "rotated.jpg"
    _orientation_test_image().save(path, exif=exif, quality=95)

    image = load_rgb(path)

    assert image.size == (20, 40)
    red = image.getpixel(red_corner)
    assert red[0] > 200 and red[2] < 60, red
    other = image.getpixel((2, 2) if red_corner != (2, 2) else (17, 37))
    assert other[2] > 200 and other[0] < 60, other


def test_load_rgb_without_orientation_keeps_layout(tmp_path: Path) -> None:
    path = tmp_path / "upright.png"
    _orientation_test_image().save(path)
    image = load_rgb(path)
    assert image.size == (40, 20)
    assert image.getpixel((2, 2)) == (255, 0, 0)


@pytest.mark.parametrize("name", ["detached.png", "detached.pgm", "detached.bmp"])
def test_load_rgb_is_detached_from_the_file(tmp_path: Path, name: str) -> None:
    """The image is held in memory of its own (not a view of a memory-mapped file, which uncompressed formats
    may give), so rewriting the file in place afterwards changes nothing."""
    path = tmp_path / name
    original = _noise(16).convert("L") if name.endswith(".pgm") else _noise(16)
    original.save(path)
    image = load_rgb(path)
    expected = np.asarray(original.convert("RGB")).copy()
    with open(path, "r+b") as handle:  # same file, new bytes
        size = handle.seek(0, 2)
        handle.seek(size // 2)
        handle.write(bytes(size - size // 2))
    assert np.array_equal(np.asarray(image), expected)
    assert image.mode == "RGB" and image.size == (16, 16)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _noise(size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, size=(size, size, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", ["truncated.png", "truncated.jpg"])
def test_load_rgb_truncated_file_fails_with_file_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    _noise().save(path)
    _truncate(path)
    with pytest.raises(ImageLoadError, match=name) as info:
        load_rgb(path)
    assert info.value.path == path
    assert info.value.__cause__ is not None


def test_load_rgb_non_image_and_missing_file(tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("this is not an image")
    with pytest.raises(ImageLoadError, match="fake.png"):
        load_rgb(fake)
    with pytest.raises(ImageLoadError, match="missing.png") as info:
        load_rgb(tmp_path / "missing.png")
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_image_load_error_pickles_and_accepts_message_only() -> None:
    import pickle

    error = ImageLoadError("/data/a.png", "broken")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == (Path("/data/a.png"), "broken", str(error))
    assert "/data/a.png" in str(error) and "broken" in str(error)
    rebuilt = ImageLoadError("whole message from a worker")
    assert str(rebuilt) == "whole message from a worker" and rebuilt.path is None
    assert str(pickle.loads(pickle.dumps(rebuilt))) == "whole message from a worker"


# ------------------------------------------------------------------------------------------------------------
# save_image


@pytest.mark.parametrize("name", ["out.png", "nested/dir/out.PNG", "out.bmp", "out.tif", "out.ppm"])
def test_save_image_lossless_round_trip(tmp_path: Path, name: str) -> None:
    image = _noise(16)
    save_image(image, tmp_path / name)
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / name)), np.asarray(image))
    # Only the destination is left in its folder: no temporary file.
    assert [path.name for path in (tmp_path / name).parent.iterdir()] == [Path(name).name]


def test_save_image_jpeg_quality_and_mode(tmp_path: Path) -> None:
    smooth = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1)))
    save_image(smooth.convert("RGBA"), tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.format == "JPEG"
    difference = np.abs(
        np.asarray(load_rgb(tmp_path / "out.jpg"), dtype=int) - np.asarray(smooth.convert("RGB"))
    )
    assert difference.max() <= 4  # quality 95; the default quality 75 is visibly worse


def test_save_image_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"out\.xyz"):
        save_image(_noise(8), tmp_path / "out.xyz")
    assert list(tmp_path.iterdir()) == []


def test_save_image_failure_leaves_existing_file_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    destination = tmp_path / "result.png"
    _noise(8).save(destination)
    original = destination.read_bytes()

    def failing_save(self, fp, format=None, **params):  # noqa: A002 - Pillow's own parameter name
        fp.write(b"\x89PNG partial data")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(_noise(8), destination)
    with pytest.raises(OSError, match="disk full"):
        save_image(_noise(8), tmp_path / "new.png")

    assert destination.read_bytes() == original
    assert sorted(path.name for path in tmp_path.iterdir()) == ["result.png"]


def test_save_image_replaces_existing_file(tmp_path: Path) -> None:
    destination = tmp_path / "result.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(destination)
    save_image(Image.new("RGB", (4, 4), (9, 8, 7)), destination)
    assert load_rgb(destination).getpixel((0, 0)) == (9, 8, 7)


# ------------------------------------------------------------------------------------------------------------
# tensor conversion


def test_tensor_round_trip_is_exact_for_every_uint8_value() -> None:
    values = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) % 256
    values = np.concatenate([values, np.random.default_rng(2).integers(0, 256, size=(16, 16, 3))], axis=0)
    image = Image.fromarray(values.astype(np.uint8))

    tensor = image_to_tensor(image)

    assert tensor.shape == (3, 32, 16) and tensor.dtype == torch.float32
    assert tensor.min().item() == -1.0 and tensor.max().item() == 1.0
    np.testing.assert_array_equal(np.asarray(tensor_to_image(tensor)), np.asarray(image))
    np.testing.assert_array_equal(np.asarray(tensor_to_image(tensor[None])), np.asarray(image))


def test_image_to_tensor_channel_order_and_grayscale() -> None:
    tensor = image_to_tensor(Image.new("RGB", (3, 2), (255, 0, 51)))
    assert tensor[:, 0, 0].tolist() == pytest.approx([1.0, -1.0, 51 / 127.5 - 1])
    gray = image_to_tensor(Image.new("L", (3, 2), 0))
    assert gray.shape == (3, 2, 3) and gray.eq(-1).all()


def test_tensor_to_image_clamps_and_rounds() -> None:
    tensor = torch.tensor([-3.0, 5.0, 0.0, 127.4 / 127.5 - 1, 127.6 / 127.5 - 1, float("nan")]).view(1, 1, 6)
    image = tensor_to_image(tensor.expand(3, 1, 6).to(torch.float64))
    assert np.asarray(image)[0, :, 0].tolist() == [0, 255, 128, 127, 128, 128]


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 4), (4, 4, 4), (1, 1, 4, 4)])
def test_tensor_to_image_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        tensor_to_image(torch.zeros(shape))


def test_save_image_uses_normal_file_permissions(tmp_path: Path) -> None:
    reference = tmp_path / "reference.txt"
    reference.write_text("x")
    save_image(_noise(4), tmp_path / "out.png")
    assert (tmp_path / "out.png").stat().st_mode == reference.stat().st_mode
