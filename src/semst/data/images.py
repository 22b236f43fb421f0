"""Image files: finding them, loading them as 8-bit RGB, saving them atomically, tensor conversion.

Every image that enters semst goes through :func:`load_rgb`, which accepts any Pillow mode (grayscale,
palette, alpha, CMYK, 16-bit and 32-bit integer, float) and returns an 8-bit RGB image. This replaces CUT's
bare ``Image.open(path).convert('RGB')``, which clips 16-bit grayscale to white, ignores EXIF orientation and
defers decoding errors of truncated files to some later point.

Tensors use CUT's convention: ``(3, H, W)`` float32 in ``[-1, 1]``, where ``-1`` is black and ``1`` is white.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from semst.files import atomic_write

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "convert_to_rgb",
    "find_images",
    "image_to_tensor",
    "load_rgb",
    "save_image",
    "tensor_to_image",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff", ".webp"}
)
"""Lower-case file suffixes recognised as images (matched case-insensitively)."""

_JPEG_QUALITY = 95
# BitsPerSample, the TIFF tag that tells how many bits of a 32-bit "I" container are used.
_TIFF_BITS_PER_SAMPLE = 258


class ImageLoadError(Exception):
    """An image file could not be read or decoded.

    Attributes:
        path: The file that failed, or ``None`` when the error was rebuilt from a message alone.
        reason: What went wrong, or ``None`` when the error was rebuilt from a message alone.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str | None = None) -> None:
        """Creates the error.

        Args:
            path: The file that could not be loaded. When ``reason`` is ``None`` this argument is taken as the
                complete message instead; PyTorch's ``DataLoader`` rebuilds errors raised in worker processes
                that way, so the type survives the trip to the main process.
            reason: What went wrong with the file.
        """
        if reason is None:
            self.path: Path | None = None
            self.reason: str | None = None
            message = str(path)
        else:
            self.path = Path(path)
            self.reason = reason
            message = f"Cannot load image '{path}': {reason}"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[ImageLoadError], tuple[object, ...]]:
        """Pickles the error (for multiprocessing) with its path and reason intact."""
        if self.path is None:
            return (type(self), (self.args[0],))
        return (type(self), (self.path, self.reason))


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _has_image_extension(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def _extension_list() -> str:
    return ", ".join(sorted(IMAGE_EXTENSIONS))


def _raise_walk_error(error: OSError) -> None:
    raise error


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    """Lists the image files at or below ``root``.

    Directories are walked recursively, following symbolic links to directories (each real directory is
    visited once, so link cycles cannot loop). Files and directories whose names start with ``"."`` are
    skipped. Extensions are matched case-insensitively against :data:`IMAGE_EXTENSIONS`. The result is sorted
    by the path relative to ``root`` in POSIX form, so it is the same on every machine and file system.

    Args:
        root: An image file, or a directory containing images (possibly in subdirectories).

    Returns:
        ``[root]`` when ``root`` is an image file; otherwise the sorted images below ``root``, each as
        ``Path(root) / relative_path``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``root`` is a file without an image extension, or a directory without images.
        OSError: A directory below ``root`` cannot be listed.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"Image path '{root}' does not exist.")
    if not root.is_dir():
        if _has_image_extension(root):
            return [root]
        raise ValueError(
            f"'{root}' is not an image file: expected a directory or a file ending in one of "
            f"{_extension_list()}."
        )

    relative_paths: list[str] = []
    visited: set[tuple[int, int]] = set()
    for directory, dir_names, file_names in os.walk(root, onerror=_raise_walk_error, followlinks=True):
        stat = os.stat(directory)
        identity = (stat.st_dev, stat.st_ino)
        if identity in visited:
            dir_names[:] = []
            continue
        visited.add(identity)
        # Pruning in place tells os.walk not to descend into hidden directories.
        dir_names[:] = [name for name in dir_names if not _is_hidden(name)]
        relative_dir = Path(directory).relative_to(root)
        for name in file_names:
            if not _is_hidden(name) and _has_image_extension(name):
                relative_paths.append((relative_dir / name).as_posix())
    if not relative_paths:
        raise ValueError(
            f"No images found in directory '{root}' (searched recursively, hidden files and folders "
            f"skipped); expected files ending in one of {_extension_list()} (any letter case)."
        )
    relative_paths.sort()
    return [root / relative for relative in relative_paths]


def _integer_bit_depth(image: Image.Image, values: np.ndarray) -> int:
    """Returns how many bits an integer grayscale image uses, for scaling it to 8 bits."""
    if image.mode.startswith("I;16"):
        return 16
    tags = getattr(image, "tag_v2", None)
    if tags is not None and _TIFF_BITS_PER_SAMPLE in tags:
        bits = tags[_TIFF_BITS_PER_SAMPLE]
        bits = int(bits[0] if isinstance(bits, tuple) else bits)
        # A signed 32-bit sample holds at most 31 bits of non-negative values.
        return min(bits, 31)
    # No metadata: mode "I" is most often 16-bit data in a 32-bit container.
    if values.size == 0 or (values.min() >= 0 and values.max() <= 0xFFFF):
        return 16
    return 31


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Rounds values already scaled to [0, 255] (half up) and casts them to uint8."""
    return np.floor(np.clip(values, 0.0, 255.0) + 0.5).astype(np.uint8)


def convert_to_rgb(image: Image.Image) -> Image.Image:
    """Converts an image of any Pillow mode to 8-bit RGB.

    Conversions:

    - ``RGB``: returned unchanged.
    - ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``RGBX``: Pillow's conversion (grayscale is
      repeated over the three channels; CMYK uses Pillow's simple formula, ICC profiles are not applied).
    - Modes with alpha (``LA``, ``La``, ``PA``, ``RGBA``, ``RGBa``, and ``P`` with a transparent palette
      entry): the alpha channel is dropped and the colour channels are kept as stored (premultiplied modes
      are un-premultiplied first). This matches CUT's ``convert('RGB')``: for training data, the colours a
      user drew are what they expect, and compositing onto a background would invent content.
    - ``I;16``, ``I;16B``, ``I;16L``, ``I;16N`` (16-bit grayscale): scaled by the bit depth,
      ``round(v * 255 / 65535)``, so 65535 becomes 255 and 32768 becomes 128 (Pillow itself would clip to
      255).
    - ``I`` (32-bit signed integer grayscale): the bit depth comes from the TIFF ``BitsPerSample`` tag when
      present (32 bits are treated as 31 usable bits of a signed sample); without metadata, images whose
      values all lie in ``[0, 65535]`` are treated as 16-bit, others as 31-bit. Negative values become 0.
    - ``F`` (32-bit float grayscale): values are taken as ``[0, 1]`` if the maximum is at most 1 and as
      ``[0, 255]`` otherwise, and clipped to that range; NaN becomes 0.

    16-bit-per-channel RGB(A) PNGs are reduced to 8 bits by Pillow while decoding, so they arrive here as
    ``RGB``/``RGBA``.

    Args:
        image: The image to convert.

    Returns:
        An image in mode ``"RGB"``.

    Raises:
        ValueError: The mode cannot be converted.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("P", "PA", "La", "RGBa"):
        # Through RGBA so that palette transparency and premultiplied alpha are handled by Pillow, then the
        # alpha channel is dropped below.
        return image.convert("RGBA").convert("RGB")
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(image)
        bits = _integer_bit_depth(image, values)
        scaled = values.astype(np.float64) * (255.0 / float(2**bits - 1))
        return Image.fromarray(_to_uint8(scaled)).convert("RGB")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.max() <= 1.0:
            values = np.clip(values, 0.0, 1.0) * 255.0
        return Image.fromarray(_to_uint8(values)).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ValueError(f"Cannot convert image mode '{mode}' to RGB: {error}") from error


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Loads an image file as an 8-bit RGB image, upright according to its EXIF orientation.

    The file is decoded completely before returning, so a truncated or corrupt file fails here and not when
    the pixels are first used. Mode conversion follows :func:`convert_to_rgb` (alpha is dropped, 16-bit data
    is scaled, not clipped).

    Args:
        path: The image file.

    Returns:
        A fully loaded image in mode ``"RGB"``, detached from the file (the file is closed).

    Raises:
        ImageLoadError: The file is missing, unreadable, not an image, truncated or corrupt, or has an
            unsupported mode. The original exception is chained as ``__cause__``.
    """
    try:
        with Image.open(path) as opened:
            opened.load()
            if opened.readonly or opened.getexif().get(ExifTags.Base.Orientation, 1) != 1:
                # A new image: rotated, or a copy of one that is only a view of the file (memory-mapped).
                upright = ImageOps.exif_transpose(opened)
            else:
                # Decoded into memory of its own, and the file is closed when the block ends: no copy needed
                # (exif_transpose would copy the whole image here).
                upright = opened
        return convert_to_rgb(upright)
    except Exception as error:
        raise ImageLoadError(path, f"{type(error).__name__}: {error}") from error


def _save_format(path: Path) -> str:
    extension = path.suffix.lower()
    image_format = Image.registered_extensions().get(extension)
    if image_format is None or image_format not in Image.SAVE:
        raise ValueError(
            f"Cannot save image to '{path}': unknown or read-only file extension '{path.suffix}'; "
            f"expected one of {_extension_list()}."
        )
    return image_format


def save_image(image: Image.Image, path: str | os.PathLike[str]) -> None:
    """Writes an image atomically, choosing the format from the file extension.

    The image is written to a hidden temporary file in the destination directory and moved over ``path``
    (:func:`semst.files.atomic_write`), so readers never see a half-written file and a failure leaves any
    existing file at ``path`` untouched (the temporary file is removed). Missing parent directories are
    created. JPEG files are written with quality 95; images in modes JPEG cannot store are converted with
    :func:`convert_to_rgb` first.

    Args:
        image: The image to save.
        path: The destination file; its extension selects the format (``.png``, ``.jpg``, ...).

    Raises:
        ValueError: The extension is not a format Pillow can write.
        OSError: The file could not be written.
    """
    path = Path(path)
    image_format = _save_format(path)
    options: dict[str, int] = {}
    if image_format == "JPEG":
        options["quality"] = _JPEG_QUALITY
        if image.mode not in ("RGB", "L", "CMYK"):
            image = convert_to_rgb(image)
    with atomic_write(path, "wb") as stream:
        image.save(stream, format=image_format, **options)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """Converts an image to a ``(3, H, W)`` float32 tensor in ``[-1, 1]``.

    Args:
        image: The image; modes other than ``"RGB"`` are converted with :func:`convert_to_rgb`.

    Returns:
        The tensor, with ``value = pixel / 127.5 - 1``.
    """
    pixels = np.array(convert_to_rgb(image), dtype=np.uint8)  # (H, W, 3), a writable copy
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).to(torch.float32)  # (3, H, W)
    return tensor.div_(127.5).sub_(1.0)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """Converts a ``(3, H, W)`` or ``(1, 3, H, W)`` tensor in ``[-1, 1]`` to an 8-bit RGB image.

    Values are clamped to ``[-1, 1]`` (NaN becomes 0, i.e. mid grey) and rounded to the nearest 8-bit level,
    so :func:`image_to_tensor` followed by this function reproduces an 8-bit image exactly.

    Args:
        tensor: The image tensor, on any device, of any floating dtype.

    Returns:
        An image in mode ``"RGB"``.

    Raises:
        ValueError: The tensor does not have shape ``(3, H, W)`` or ``(1, 3, H, W)``.
    """
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(
            f"Expected an image tensor of shape (3, H, W) or (1, 3, H, W), got shape {tuple(tensor.shape)}."
        )
    values = torch.nan_to_num(tensor.detach().to(device="cpu", dtype=torch.float32), nan=0.0)
    values = ((values.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)  # (3, H, W)
    return Image.fromarray(values.permute(1, 2, 0).contiguous().numpy())
