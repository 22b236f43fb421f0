"""Small helpers for the pictures semst draws (captions on image grids and panels)."""

from __future__ import annotations

from functools import lru_cache

from PIL import ImageFont


@lru_cache(maxsize=8)
def caption_font(size: int = 13) -> ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (Pillow >= 10.1), else its fixed small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1
        return ImageFont.load_default()
