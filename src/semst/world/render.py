"""Render a labelled scene (semst.world.layout) into the look of one domain.

* ``render_source``: the game-like source domain (the GTA5 stand-in): flat shading, clean edges, saturated
  colours, a smooth sky gradient, light distance haze.
* ``render_target``: the photo-like target domain (the Cityscapes stand-in): real texture photographs that
  ship in scikit-image (grass, gravel, brick) on the ground, the facades and the trees, muted colours, a
  cloudy sky, sunlight from one side, a colour cast, lens blur and sensor noise.
* ``render_parsing``: the label map in the Cityscapes palette (the source of the parsing-to-image task).

Renderers never change which pixel belongs to which class: the label map of a scene is the ground truth of
both renderings.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from semst.world.layout import (
    BUILDING,
    CAR,
    CAR_WINDOW,
    HEAD,
    LANE_MARKING,
    PERSON,
    POLE,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    TERRAIN,
    TRUNK,
    VEGETATION,
    WHEEL,
    WINDOW,
    Scene,
)

# Cityscapes palette of the trainIds the world uses (the full table is semst.data.labels).
PARSING_COLORS = {
    ROAD: (128, 64, 128),
    SIDEWALK: (244, 35, 232),
    BUILDING: (70, 70, 70),
    POLE: (153, 153, 153),
    SIGN: (220, 220, 0),
    VEGETATION: (107, 142, 35),
    TERRAIN: (152, 251, 152),
    SKY: (70, 130, 180),
    PERSON: (220, 20, 60),
    CAR: (0, 0, 142),
}


def _palette_pick(palette: np.ndarray, tones: np.ndarray) -> np.ndarray:
    """A colour per instance from a palette (K, 3), by tone in [0, 1)."""
    return palette[np.minimum((tones * len(palette)).astype(int), len(palette) - 1)]


def _instance_colors(scene: Scene, palettes: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(N + 1, 3) float colours of the instances (row 0 unused), jittered per instance."""
    colors = np.zeros((len(scene.attributes) + 1, 3), dtype=np.float32)
    for index, attrs in scene.attributes.items():
        palette = palettes[attrs["kind"]]
        colors[index] = _palette_pick(palette, np.array([attrs["tone"]]))[0] * rng.uniform(0.9, 1.1)
    return colors


def _compose(scene: Scene, class_colors: dict[int, np.ndarray], instance_colors: np.ndarray) -> np.ndarray:
    """(H, W, 3) float base colours: per class for stuff, per instance for things."""
    image = np.zeros(scene.labels.shape + (3,), dtype=np.float32)
    for label, color in class_colors.items():
        image[scene.labels == label] = color
    things = scene.instances > 0
    image[things] = instance_colors[scene.instances[things]]
    return image


def _rows(scene: Scene) -> np.ndarray:
    return np.arange(scene.labels.shape[0], dtype=np.float32)[:, None]


# The game-like source domain: saturated colours per kind of object (picked per instance by its tone), flat
# colours per class of stuff.
_SOURCE_PALETTES = {
    "building": np.array(
        [
            [228, 120, 92],
            [240, 204, 104],
            [118, 178, 226],
            [206, 112, 176],
            [150, 214, 132],
            [244, 160, 64],
        ],
        np.float32,
    ),
    "car": np.array(
        [[220, 30, 40], [30, 80, 220], [250, 210, 30], [240, 240, 240], [30, 180, 90]], np.float32
    ),
    "person": np.array([[250, 120, 20], [40, 160, 250], [240, 50, 140], [120, 230, 60]], np.float32),
    "tree": np.array([[60, 190, 50], [90, 200, 40], [40, 170, 70]], np.float32),
    "pole": np.array([[150, 150, 165]], np.float32),
    "sign": np.array([[230, 30, 30], [30, 90, 230], [250, 220, 20]], np.float32),
}
_SOURCE_STUFF = {
    ROAD: np.array([88, 88, 100], np.float32),
    SIDEWALK: np.array([196, 184, 172], np.float32),
    TERRAIN: np.array([112, 206, 72], np.float32),
    SKY: np.array([0, 0, 0], np.float32),  # replaced by a gradient
}
_SOURCE_DETAILS = {
    WINDOW: np.array([44, 62, 120], np.float32),
    CAR_WINDOW: np.array([30, 40, 64], np.float32),
    WHEEL: np.array([22, 22, 24], np.float32),
    LANE_MARKING: np.array([250, 250, 245], np.float32),
    TRUNK: np.array([124, 82, 40], np.float32),
    HEAD: np.array([240, 200, 170], np.float32),
}


def render_source(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The game-like rendering, (H, W, 3) uint8."""
    height, width = scene.labels.shape
    image = _compose(scene, _SOURCE_STUFF, _instance_colors(scene, _SOURCE_PALETTES, rng))
    rows = _rows(scene)
    sky_top, sky_low = np.array([70, 150, 255], np.float32), np.array([196, 228, 255], np.float32)
    mix = np.clip(rows / max(1, scene.horizon), 0, 1)[..., None]  # (H, 1, 1)
    sky = np.broadcast_to(sky_top + (sky_low - sky_top) * mix, image.shape)
    is_sky = scene.labels == SKY
    image[is_sky] = sky[is_sky]
    for detail, color in _SOURCE_DETAILS.items():
        image[scene.details == detail] = color
    # Flat "cel" shading: the two facade sides and the ground differ by a constant, plus light haze.
    left = np.arange(width, dtype=np.float32)[None, :] < scene.vanishing_x
    shade = np.where(left, 1.08, 0.9)[..., None]
    image = np.where((scene.labels == BUILDING)[..., None], image * shade, image)
    haze = np.clip(1 - np.abs(rows - scene.horizon) / (0.5 * height), 0, 1)[..., None] * 0.25
    image = image * (1 - haze) + sky_low * haze
    return np.clip(image, 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def _textures() -> dict[str, np.ndarray]:
    """Real texture photographs from scikit-image, normalised to zero mean and unit deviation (512, 512)."""
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the procedural world's target domain uses texture photos from scikit-image: "
            "pip install 'semst[demo]'"
        ) from exc
    out = {}
    for name in ("grass", "gravel", "brick"):
        texture = getattr(data, name)().astype(np.float32)
        out[name] = (texture - texture.mean()) / (texture.std() + 1e-6)
    return out


def _sample(texture: np.ndarray, shape: tuple[int, int], zoom: float, rng: np.random.Generator) -> np.ndarray:
    """A (H, W) view of a tiled texture at a random offset, magnified by ``zoom`` (nearest sampling)."""
    height, width = shape
    size = texture.shape[0]
    dy, dx = rng.integers(0, size, size=2)
    ys = ((np.arange(height) / zoom).astype(int) + dy) % size
    xs = ((np.arange(width) / zoom).astype(int) + dx) % size
    return texture[np.ix_(ys, xs)]


def _smooth_noise(shape: tuple[int, int], cell: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: random values on a coarse grid, upsampled bicubically."""
    height, width = shape
    coarse = rng.uniform(0, 255, size=(max(2, height // cell + 2), max(2, width // cell + 2))).astype(
        np.uint8
    )
    up = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float32)
    return up / 127.5 - 1


# The photo-like target domain: muted colours, and real texture photographs per class.
_TARGET_PALETTES = {
    "building": np.array(
        [
            [150, 142, 134],
            [128, 110, 98],
            [170, 160, 140],
            [110, 104, 102],
            [140, 96, 80],
            [186, 178, 166],
        ],
        np.float32,
    ),
    "car": np.array([[40, 42, 46], [150, 152, 156], [200, 200, 204], [40, 52, 86], [96, 30, 30]], np.float32),
    "person": np.array([[40, 40, 48], [70, 60, 52], [96, 96, 110], [60, 70, 90]], np.float32),
    "tree": np.array([[54, 78, 34], [66, 86, 40], [46, 70, 40]], np.float32),
    "pole": np.array([[92, 94, 96]], np.float32),
    "sign": np.array([[170, 40, 40], [40, 70, 150], [200, 170, 40]], np.float32),
}
_TARGET_STUFF = {
    ROAD: np.array([96, 94, 98], np.float32),
    SIDEWALK: np.array([140, 134, 130], np.float32),
    TERRAIN: np.array([118, 122, 70], np.float32),
    SKY: np.array([188, 198, 210], np.float32),
}
# Class -> (texture photo, zoom, strength of its relative brightness modulation); sampled in this order.
_TARGET_TEXTURES = {
    ROAD: ("gravel", 0.7, 0.12),
    SIDEWALK: ("gravel", 1.4, 0.14),
    TERRAIN: ("grass", 0.8, 0.3),
    BUILDING: ("brick", 0.5, 0.22),
    VEGETATION: ("grass", 0.6, 0.45),
    CAR: ("gravel", 2.0, 0.05),
    PERSON: ("gravel", 1.0, 0.1),
}


def render_target(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The photo-like rendering, (H, W, 3) uint8."""
    base = _compose(scene, _TARGET_STUFF, _instance_colors(scene, _TARGET_PALETTES, rng))
    texture = _texture_modulation(scene.labels, rng)
    image = base * (1 + texture[..., None])
    _paint_target_details(image, scene, texture)
    # Cloudy sky.
    is_sky = scene.labels == SKY
    clouds = _smooth_noise(scene.labels.shape, 40, rng)
    image[is_sky] = (
        image[is_sky] * (1 + 0.08 * clouds[is_sky][:, None]) + 18 * np.clip(clouds[is_sky], 0, 1)[:, None]
    )
    image = _light(image, rng)
    # Lens blur and sensor noise.
    blurred = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(radius=float(rng.uniform(0.6, 1.0)))
    )
    image = np.asarray(blurred, np.float32) + rng.normal(0, 3.5, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _texture_modulation(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) relative brightness modulation: each class's texture photo, scaled by its strength."""
    textures = _textures()
    texture = np.zeros(labels.shape, np.float32)
    for label, (name, zoom, amount) in _TARGET_TEXTURES.items():
        mask = labels == label
        if mask.any():
            texture[mask] = amount * _sample(textures[name], labels.shape, zoom, rng)[mask]
    return texture


def _paint_target_details(image: np.ndarray, scene: Scene, texture: np.ndarray) -> None:
    """Windows reflect the sky (lighter at the top), car windows are dark glass, wheels black, trunks brown."""
    details = scene.details
    reflection = 60 + 50 * np.clip(1 - _rows(scene) / max(1, scene.horizon), 0, 1)
    window = details == WINDOW
    image[window] = np.broadcast_to(reflection, details.shape)[window][:, None] * np.array(
        [0.8, 0.9, 1.0], np.float32
    )
    image[details == CAR_WINDOW] = np.array([28, 32, 38], np.float32)
    image[details == WHEEL] = np.array([18, 18, 18], np.float32)
    image[details == LANE_MARKING] = np.array([200, 200, 196], np.float32) * (
        1 + 0.1 * texture[details == LANE_MARKING][:, None]
    )
    image[details == TRUNK] = np.array([70, 56, 44], np.float32)
    image[details == HEAD] = np.array([190, 150, 130], np.float32)


def _light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sunlight from one side, a colour cast, vignetting."""
    height, width = image.shape[:2]
    columns = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    sun = 1 + rng.uniform(-0.15, 0.15) * columns + 0.08 * _smooth_noise((height, width), 64, rng)
    cast = 1 + rng.normal(0, 0.05, size=3).astype(np.float32)
    yy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    vignette = 1 - 0.18 * (columns**2 + yy**2) / 2
    return image * (sun * vignette)[..., None] * cast


def render_parsing(scene: Scene) -> np.ndarray:
    """The label map in the Cityscapes palette, (H, W, 3) uint8."""
    image = np.zeros(scene.labels.shape + (3,), np.uint8)
    for label, color in PARSING_COLORS.items():
        image[scene.labels == label] = color
    return image


RENDERERS = {"source": render_source, "target": render_target}
"""The street-scene renderer of each domain, by the names of :data:`semst.world.layout.DOMAIN_STATS`."""
