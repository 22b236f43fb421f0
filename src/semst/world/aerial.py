"""A paired aerial world for the photo-to-map protocol (the stand-in for the pix2pix Maps data set).

One top-down layout (a street grid with major and minor roads, city blocks of buildings, parks with trees,
a river or pond, cars on the roads) is rendered twice: as an aerial photograph (textured roofs with
shadows, asphalt, grass and trees from real texture photos, water, haze, noise) and as a map (flat colours
in the style of web maps). The pair shares every pixel's meaning, so a photo-to-map translation is scored
pixel by pixel against the true map: RMSE and the accuracy within delta 5 and 10 (paper section 4.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from semst.world.render import _sample, _smooth_noise, _textures

# Area codes of the top-down layout.
GROUND, MINOR_ROAD, MAJOR_ROAD, BUILDING, PARK, TREE, WATER = 0, 1, 2, 3, 4, 5, 6

MAP_COLORS = {
    GROUND: (242, 239, 233),
    MINOR_ROAD: (255, 255, 255),
    MAJOR_ROAD: (252, 214, 164),
    BUILDING: (217, 208, 201),
    PARK: (200, 230, 170),
    TREE: (200, 230, 170),  # maps do not draw single trees
    WATER: (170, 211, 223),
}


@dataclass
class AerialLayout:
    areas: np.ndarray  # (H, W) uint8 area codes
    heights: np.ndarray  # (H, W) float32 building heights in pixels (for shadows)
    tones: np.ndarray  # (H, W) float32 in [0, 1): per-object colour choice
    cars: np.ndarray  # (H, W) bool: cars on the roads (photos show them, maps do not)


class _AerialCanvas:
    """The four layers of a top-down layout, drawn with PIL: area codes, heights, tones and cars."""

    def __init__(self, size: int):
        self.size = size
        self.areas = Image.new("L", (size, size), GROUND)
        self.heights = Image.new("F", (size, size), 0.0)
        self.tones = Image.new("F", (size, size), 0.0)
        self.cars = Image.new("1", (size, size), 0)
        self.draw_areas, self.draw_heights = ImageDraw.Draw(self.areas), ImageDraw.Draw(self.heights)
        self.draw_tones, self.draw_cars = ImageDraw.Draw(self.tones), ImageDraw.Draw(self.cars)

    def layout(self) -> AerialLayout:
        return AerialLayout(
            areas=np.asarray(self.areas, np.uint8),
            heights=np.asarray(self.heights, np.float32),
            tones=np.asarray(self.tones, np.float32),
            cars=np.asarray(self.cars, bool),
        )


def generate_aerial(rng: np.random.Generator, size: int = 256) -> AerialLayout:
    """One top-down layout of ``size`` x ``size`` pixels."""
    canvas = _AerialCanvas(size)

    def lines(count: int) -> list[float]:
        positions = np.sort(rng.uniform(0.05, 0.95, size=count)) * size
        return [float(p) for p in positions]

    rows, cols = lines(int(rng.integers(2, 4))), lines(int(rng.integers(2, 4)))
    major_row, major_col = int(rng.integers(len(rows))), int(rng.integers(len(cols)))
    edges_y, edges_x = [0.0, *rows, float(size)], [0.0, *cols, float(size)]
    # Blocks between roads: buildings, or a park with trees.
    for y0, y1 in zip(edges_y[:-1], edges_y[1:]):
        for x0, x1 in zip(edges_x[:-1], edges_x[1:]):
            inset = 6
            block = (x0 + inset, y0 + inset, x1 - inset, y1 - inset)
            if block[2] - block[0] < 8 or block[3] - block[1] < 8:
                continue
            if rng.random() < 0.25:
                _park(canvas, rng, block)
            else:
                _buildings(canvas, rng, block)
    # Water: a river along one side, sometimes.
    if rng.random() < 0.4:
        points = []
        x = rng.uniform(0.1, 0.9) * size
        for y in np.linspace(-10, size + 10, 8):
            x += rng.normal(0, 12)
            points.append((x, y))
        width = rng.uniform(10, 24)
        canvas.draw_areas.line(points, fill=WATER, width=int(width), joint="curve")
    # Roads on top, then cars on them.
    for i, y in enumerate(rows):
        road = (MAJOR_ROAD, 9) if i == major_row else (MINOR_ROAD, 5)
        canvas.draw_areas.line([(0, y), (size, y)], fill=road[0], width=road[1])
    for i, x in enumerate(cols):
        road = (MAJOR_ROAD, 9) if i == major_col else (MINOR_ROAD, 5)
        canvas.draw_areas.line([(x, 0), (x, size)], fill=road[0], width=road[1])
    _cars(canvas, rng, rows, cols)
    return canvas.layout()


def _park(canvas: _AerialCanvas, rng: np.random.Generator, block: tuple[float, float, float, float]) -> None:
    """A park with trees filling a block (x0, y0, x1, y1)."""
    bx0, by0, bx1, by1 = block
    canvas.draw_areas.rectangle([bx0, by0, bx1, by1], fill=PARK)
    for _ in range(int(rng.integers(3, 12))):
        cx, cy = rng.uniform(bx0, bx1), rng.uniform(by0, by1)
        r = rng.uniform(3, 7)
        canvas.draw_areas.ellipse([cx - r, cy - r, cx + r, cy + r], fill=TREE)
        canvas.draw_heights.ellipse([cx - r, cy - r, cx + r, cy + r], fill=float(r))


def _buildings(
    canvas: _AerialCanvas, rng: np.random.Generator, block: tuple[float, float, float, float]
) -> None:
    """A block (x0, y0, x1, y1) cut into lots, most of them built on."""
    bx0, by0, bx1, by1 = block
    y = by0
    while y < by1 - 4:
        depth = rng.uniform(10, 26)
        x = bx0
        while x < bx1 - 4:
            frontage = rng.uniform(10, 30)
            box = [x + 1, y + 1, min(x + frontage, bx1) - 1, min(y + depth, by1) - 1]
            if box[2] - box[0] > 3 and box[3] - box[1] > 3 and rng.random() < 0.9:
                canvas.draw_areas.rectangle(box, fill=BUILDING)
                canvas.draw_heights.rectangle(box, fill=float(rng.uniform(2, 9)))
                canvas.draw_tones.rectangle(box, fill=float(rng.random()))
            x += frontage
        y += depth


def _cars(canvas: _AerialCanvas, rng: np.random.Generator, rows: list[float], cols: list[float]) -> None:
    """Cars on the roads, beside their centre lines."""
    size = canvas.size
    for _ in range(int(rng.integers(2, 10))):
        if rng.random() < 0.5:
            y, x = rows[int(rng.integers(len(rows)))] + rng.choice([-1.5, 1.5]), rng.uniform(0, size)
            box = [x - 3, y - 1.2, x + 3, y + 1.2]
        else:
            x, y = cols[int(rng.integers(len(cols)))] + rng.choice([-1.5, 1.5]), rng.uniform(0, size)
            box = [x - 1.2, y - 3, x + 1.2, y + 3]
        canvas.draw_cars.rectangle(box, fill=1)
        canvas.draw_tones.rectangle(box, fill=float(rng.random()))


def render_map(layout: AerialLayout) -> np.ndarray:
    """The web-map rendering, (H, W, 3) uint8: flat colours, building outlines."""
    image = np.zeros(layout.areas.shape + (3,), np.uint8)
    for code, color in MAP_COLORS.items():
        image[layout.areas == code] = color
    building = layout.areas == BUILDING
    edge = building & ~(
        np.roll(building, 1, 0)
        & np.roll(building, -1, 0)
        & np.roll(building, 1, 1)
        & np.roll(building, -1, 1)
    )
    image[edge] = (196, 186, 178)
    return image


def render_aerial(layout: AerialLayout, rng: np.random.Generator) -> np.ndarray:
    """The aerial-photo rendering, (H, W, 3) uint8."""
    shape = layout.areas.shape
    textures = _textures()
    areas, tones = layout.areas, layout.tones
    image = np.zeros(shape + (3,), np.float32)
    grass = _sample(textures["grass"], shape, 0.5, rng)
    gravel = _sample(textures["gravel"], shape, 0.5, rng)
    brick = _sample(textures["brick"], shape, 0.35, rng)
    ground = np.array([120, 116, 96], np.float32)
    image[:] = ground * (1 + 0.18 * gravel[..., None])
    asphalt = (areas == MINOR_ROAD) | (areas == MAJOR_ROAD)
    image[asphalt] = np.array([84, 86, 90], np.float32) * (1 + 0.08 * gravel[asphalt][:, None])
    park = areas == PARK
    image[park] = np.array([86, 112, 56], np.float32) * (1 + 0.3 * grass[park][:, None])
    roofs = np.array(
        [[150, 80, 64], [120, 118, 116], [170, 160, 150], [92, 92, 100], [190, 120, 90]], np.float32
    )
    building = areas == BUILDING
    roof = roofs[np.minimum((tones[building] * len(roofs)).astype(int), len(roofs) - 1)]
    image[building] = roof * (1 + 0.15 * brick[building][:, None])
    tree = areas == TREE
    image[tree] = np.array([40, 64, 30], np.float32) * (1 + 0.45 * grass[tree][:, None])
    water = areas == WATER
    image[water] = np.array([46, 70, 78], np.float32) * (
        1 + 0.06 * _smooth_noise(shape, 16, rng)[water][:, None]
    )
    cars = np.array([[200, 200, 205], [30, 30, 34], [150, 30, 30], [40, 60, 120]], np.float32)
    car = layout.cars
    image[car] = cars[np.minimum((tones[car] * len(cars)).astype(int), len(cars) - 1)]
    # Shadows cast toward the bottom right by buildings and trees (sun from the top left).
    height = layout.heights
    shadow = np.zeros(shape, bool)
    for step in range(1, 10):
        shifted = np.zeros_like(height)
        shifted[step:, step:] = height[:-step, :-step]
        shadow |= shifted >= step
    shadow &= height == 0
    image[shadow] *= 0.55
    # Haze, a colour cast, blur and noise.
    image = image * (1 + 0.06 * _smooth_noise(shape, 64, rng)[..., None]) * (1 + rng.normal(0, 0.04, size=3))
    blurred = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7))
    image = np.asarray(blurred, np.float32) + rng.normal(0, 3.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
