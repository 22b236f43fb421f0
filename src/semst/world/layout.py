"""Procedural street scenes with exact labels: the geometry of the labelled two-domain world.

A scene is a perspective view along a street (a 2:1 frame like Cityscapes): sky, a horizon, a road with
lane markings running to a vanishing point, sidewalks and grass verges on both sides, building facades
along the sidewalks, trees, poles with traffic signs, cars and people, all sized by their distance. Every
pixel has a Cityscapes trainId (the label map), an instance id and a detail code (windows, wheels, lane
markings: parts that keep the label of their object but that a renderer shades differently).

The two domains differ in their class statistics as GTA5 and Cityscapes do (paper Figure 1): the
source scenes (`SOURCE_STATS`) have a lower horizon, low and sparse buildings, few trees and cars and a
wide road, so sky and road dominate; the target scenes (`TARGET_STATS`) have dense tall buildings, rows of
trees and parked cars. A translator that matches the target's statistics instead of keeping the content
turns sky into building or vegetation: the semantic distortion the paper measures.

Everything is a pure function of the seed (``numpy.random.Generator``), fast (a few milliseconds a scene at
512x256) and independent of how it is later rendered (semst.world.render).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

# Cityscapes trainIds of the classes the world draws.
ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = 0, 1, 2, 5, 7, 8, 9, 10, 11, 13
WORLD_CLASSES = {
    ROAD: "road",
    SIDEWALK: "sidewalk",
    BUILDING: "building",
    POLE: "pole",
    SIGN: "traffic sign",
    VEGETATION: "vegetation",
    TERRAIN: "terrain",
    SKY: "sky",
    PERSON: "person",
    CAR: "car",
}

# Detail codes: parts that keep their object's label but are shaded differently.
PLAIN, WINDOW, WHEEL, LANE_MARKING, HEAD, TRUNK, CAR_WINDOW = 0, 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class SceneStats:
    """Ranges the layout of one domain is drawn from (fractions of the frame, counts, heights in units;
    one unit is ``unit`` x the frame height at the bottom edge and shrinks linearly to 0 at the horizon)."""

    horizon: tuple[float, float]  # horizon row as a fraction of the height
    road_width: tuple[float, float]  # road width at the bottom edge, fraction of the width
    sidewalk_width: tuple[float, float]  # each sidewalk at the bottom edge, fraction of the width
    verge_prob: float  # chance of a grass verge between a sidewalk and the facades
    building_prob: float  # chance that a facade slot holds a building
    building_height: tuple[float, float]  # units
    trees: tuple[int, int]  # inclusive count range
    cars: tuple[int, int]
    people: tuple[int, int]
    poles: tuple[int, int]
    sign_prob: float  # chance that a pole carries a sign
    unit: float = 0.12


SOURCE_STATS = SceneStats(
    horizon=(0.50, 0.60),
    road_width=(1.0, 1.5),
    sidewalk_width=(0.10, 0.2),
    verge_prob=0.3,
    building_prob=0.3,
    building_height=(1.5, 5.0),
    trees=(0, 2),
    cars=(0, 2),
    people=(0, 2),
    poles=(1, 3),
    sign_prob=0.6,
)
TARGET_STATS = SceneStats(
    horizon=(0.38, 0.48),
    road_width=(0.55, 0.85),
    sidewalk_width=(0.15, 0.3),
    verge_prob=0.5,
    building_prob=0.95,
    building_height=(6.0, 16.0),
    trees=(3, 7),
    cars=(3, 7),
    people=(1, 5),
    poles=(2, 5),
    sign_prob=0.6,
)
DOMAIN_STATS = {"source": SOURCE_STATS, "target": TARGET_STATS}

# A second world with other scenes and the opposite class statistics, so that a method is not tuned to one
# world: green suburban source streets (trees and small houses along the road: much vegetation, some
# building) against a target of open roads (a high horizon's large sky, wide roads, few trees and houses).
# A translator that imitates these target statistics turns trees into sky or terrain and houses into sky.
GREEN_SOURCE_STATS = SceneStats(
    horizon=(0.36, 0.46),
    road_width=(0.55, 0.8),
    sidewalk_width=(0.08, 0.16),
    verge_prob=0.8,
    building_prob=0.55,
    building_height=(2.0, 5.0),
    trees=(7, 12),
    cars=(1, 3),
    people=(0, 2),
    poles=(1, 3),
    sign_prob=0.5,
)
GREEN_TARGET_STATS = SceneStats(
    horizon=(0.56, 0.66),
    road_width=(1.1, 1.6),
    sidewalk_width=(0.05, 0.12),
    verge_prob=0.9,
    building_prob=0.15,
    building_height=(1.0, 3.0),
    trees=(0, 2),
    cars=(2, 5),
    people=(0, 1),
    poles=(2, 4),
    sign_prob=0.8,
)
# A third world: the green suburban source streets against a town whose scenes hold every class in a share a
# segmenter learns (buildings, trees, sky, road, sidewalk, cars), so that distortion is measured on every class
# (the green world's target has almost no buildings or trees, and its segmenter never learns them). The
# pressure: more sky and building and fewer trees than the source, so a translator that imitates the target
# turns trees into buildings or sky.
TOWN_TARGET_STATS = SceneStats(
    horizon=(0.40, 0.50),
    road_width=(0.7, 1.0),
    sidewalk_width=(0.1, 0.2),
    verge_prob=0.5,
    building_prob=0.8,
    building_height=(3.0, 8.0),
    trees=(3, 6),
    cars=(2, 5),
    people=(1, 3),
    poles=(2, 4),
    sign_prob=0.6,
)
SCENES: dict[str, dict[str, SceneStats]] = {
    "city": DOMAIN_STATS,
    "green": {"source": GREEN_SOURCE_STATS, "target": GREEN_TARGET_STATS},
    "town": {"source": GREEN_SOURCE_STATS, "target": TOWN_TARGET_STATS},
}
"""The worlds' scene statistics by name: ``city`` (the default; sky and road against dense buildings),
``green`` (trees and houses against open roads and sky) and ``town`` (trees and houses against a town that
holds every class)."""


@dataclass
class Scene:
    """A rasterised layout: ``labels`` (H, W) uint8 trainIds, ``instances`` (H, W) int32 (0 = background
    stuff), ``details`` (H, W) uint8 detail codes, and per-instance attributes (``tone`` in [0, 1] picks a
    colour within the class, ``kind`` names the object)."""

    labels: np.ndarray
    instances: np.ndarray
    details: np.ndarray
    horizon: int
    vanishing_x: float
    attributes: dict[int, dict] = field(default_factory=dict)


class _Canvas:
    """Paints shapes into the label, instance and detail maps at once (PIL drawing, no antialiasing)."""

    def __init__(self, width: int, height: int):
        self.size = (width, height)
        self.labels = Image.new("L", self.size, SKY)
        self.instances = Image.new("I", self.size, 0)
        self.details = Image.new("L", self.size, PLAIN)
        self._draw = [ImageDraw.Draw(im) for im in (self.labels, self.instances, self.details)]
        self.attributes: dict[int, dict] = {}

    def new_instance(self, kind: str, rng: np.random.Generator) -> int:
        index = len(self.attributes) + 1
        self.attributes[index] = {"kind": kind, "tone": float(rng.random())}
        return index

    def polygon(self, points, label: int, instance: int = 0, detail: int = PLAIN) -> None:
        points = [(float(x), float(y)) for x, y in points]
        for draw, value in zip(self._draw, (label, instance, detail)):
            draw.polygon(points, fill=value)

    def ellipse(self, box, label: int, instance: int = 0, detail: int = PLAIN) -> None:
        x0, y0, x1, y1 = box
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        for draw, value in zip(self._draw, (label, instance, detail)):
            draw.ellipse(box, fill=value)

    def rectangle(self, box, label: int, instance: int = 0, detail: int = PLAIN) -> None:
        x0, y0, x1, y1 = box
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        for draw, value in zip(self._draw, (label, instance, detail)):
            draw.rectangle(box, fill=value)

    def detail_polygon(self, points, detail: int) -> None:
        self._draw[2].polygon([(float(x), float(y)) for x, y in points], fill=detail)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


@dataclass(frozen=True)
class _Street:
    """The perspective and the ground plan of one scene: rows, and x positions at the bottom edge."""

    width: int
    height: int
    horizon: int  # image row of the horizon
    vanishing_x: float
    unit: float  # pixels per unit at the bottom edge
    road: tuple[float, float]  # left and right road edges
    sidewalks: tuple[float, float]  # outer edges of the left and right sidewalks
    facades: tuple[float, float]  # where the left and right facades stand

    def scale(self, y: float) -> float:
        """Size of one unit at image row y (0 at the horizon, ``unit`` at the bottom)."""
        return max(0.0, (y - self.horizon) / max(1, self.height - self.horizon)) * self.unit

    def toward(self, x_bottom: float, t: float) -> tuple[float, float]:
        """The point a fraction t of the way from (x_bottom, bottom) to the vanishing point."""
        return x_bottom + (self.vanishing_x - x_bottom) * t, self.height + (self.horizon - self.height) * t


def generate_scene(rng: np.random.Generator, stats: SceneStats, width: int = 512, height: int = 256) -> Scene:
    """Draw one street scene of ``width`` x ``height`` pixels with the statistics of one domain."""
    if width < 16 or height < 8:
        raise ValueError(f"scenes need at least 16x8 pixels, got {width}x{height}")
    canvas = _Canvas(width, height)
    street = _plan_street(rng, stats, width, height)
    _draw_ground(canvas, street)
    for base_x in street.facades:
        _draw_facades(canvas, rng, street, base_x, stats)
    _draw_objects(canvas, rng, street, stats)
    return Scene(
        labels=np.asarray(canvas.labels, dtype=np.uint8),
        instances=np.asarray(canvas.instances, dtype=np.int32),
        details=np.asarray(canvas.details, dtype=np.uint8),
        horizon=street.horizon,
        vanishing_x=float(street.vanishing_x),
        attributes=canvas.attributes,
    )


def _plan_street(rng: np.random.Generator, stats: SceneStats, width: int, height: int) -> _Street:
    """Draws the horizon, the vanishing point and the widths of the road, sidewalks and verges."""
    horizon = int(round(_uniform(rng, stats.horizon) * height))
    vx = width * (0.5 + rng.uniform(-0.12, 0.12))
    road_half = _uniform(rng, stats.road_width) * width / 2
    walk = [_uniform(rng, stats.sidewalk_width) * width for _ in range(2)]
    road_l, road_r = vx - road_half, vx + road_half
    outer_l, outer_r = road_l - walk[0], road_r + walk[1]
    verge = [rng.random() < stats.verge_prob for _ in range(2)]
    facade_l = outer_l - (0.25 * width if verge[0] else 0.0)
    facade_r = outer_r + (0.25 * width if verge[1] else 0.0)
    return _Street(
        width=width,
        height=height,
        horizon=horizon,
        vanishing_x=vx,
        unit=stats.unit * height,
        road=(road_l, road_r),
        sidewalks=(outer_l, outer_r),
        facades=(facade_l, facade_r),
    )


def _draw_ground(canvas: _Canvas, street: _Street) -> None:
    """Terrain everywhere below the horizon, then sidewalks and the road on top, and a dashed centre line."""
    width, height, horizon, vx = street.width, street.height, street.horizon, street.vanishing_x
    (road_l, road_r), (outer_l, outer_r) = street.road, street.sidewalks
    canvas.rectangle((0, horizon, width, height), TERRAIN)
    for inner, outer in ((road_l, outer_l), (road_r, outer_r)):
        canvas.polygon([(inner, height), (outer, height), (vx, horizon), (vx, horizon)], SIDEWALK)
    canvas.polygon([(road_l, height), (road_r, height), (vx + 1, horizon), (vx - 1, horizon)], ROAD)
    t = 0.0
    while t < 0.97:
        t1 = min(0.98, t + 0.06 * (1 - t) + 0.01)
        (xa, ya), (xb, yb) = street.toward(vx, t), street.toward(vx, t1)
        half_a, half_b = 0.08 * street.scale(ya), 0.08 * street.scale(yb)
        canvas.detail_polygon(
            [(xa - half_a, ya), (xa + half_a, ya), (xb + half_b, yb), (xb - half_b, yb)], LANE_MARKING
        )
        t = t1 + 0.05 * (1 - t1) + 0.01


def _draw_facades(
    canvas: _Canvas, rng: np.random.Generator, street: _Street, base_x: float, stats: SceneStats
) -> None:
    """Buildings along one side, far to near so that nearer buildings overlap farther ones."""
    slots = []
    t = 0.0
    while t < 0.96:
        length = rng.uniform(0.12, 0.3) * (1 - t) + 0.02
        slots.append((t, min(0.985, t + length)))
        t += length
    for t0, t1 in reversed(slots):
        if rng.random() >= stats.building_prob:
            continue
        height_units = _uniform(rng, stats.building_height)
        (xa, ya), (xb, yb) = street.toward(base_x, t0), street.toward(base_x, t1)
        top_a, top_b = ya - height_units * street.scale(ya), yb - height_units * street.scale(yb)
        instance = canvas.new_instance("building", rng)
        canvas.polygon([(xa, ya), (xa, top_a), (xb, top_b), (xb, yb)], BUILDING, instance)
        _windows(canvas, rng, (xa, ya, top_a), (xb, yb, top_b), height_units)


def _draw_objects(canvas: _Canvas, rng: np.random.Generator, street: _Street, stats: SceneStats) -> None:
    """Places trees, poles, cars and people, then draws them far to near."""
    width, scale, toward = street.width, street.scale, street.toward
    (road_l, road_r), (outer_l, outer_r) = street.road, street.sidewalks
    facade_l, facade_r = street.facades
    objects = []  # (base row, draw function, its arguments)
    for _ in range(int(rng.integers(stats.trees[0], stats.trees[1] + 1))):
        side_x = facade_l if rng.random() < 0.5 else facade_r
        x, y = toward(side_x + rng.uniform(-0.05, 0.05) * width, rng.uniform(0.0, 0.9))
        objects.append((y, _tree, (x, y, scale(y))))
    for _ in range(int(rng.integers(stats.poles[0], stats.poles[1] + 1))):
        edge = road_l - 0.02 * width if rng.random() < 0.5 else road_r + 0.02 * width
        x, y = toward(edge, rng.uniform(0.0, 0.9))
        objects.append((y, _pole, (x, y, scale(y), rng.random() < stats.sign_prob)))
    for _ in range(int(rng.integers(stats.cars[0], stats.cars[1] + 1))):
        lane = rng.uniform(0.12, 0.88)  # across the road
        x, y = toward(road_l + lane * (road_r - road_l), rng.uniform(0.0, 0.92))
        objects.append((y, _car, (x, y, scale(y))))
    for _ in range(int(rng.integers(stats.people[0], stats.people[1] + 1))):
        left = rng.random() < 0.5
        inner, outer = (road_l, outer_l) if left else (road_r, outer_r)
        x, y = toward(inner + rng.uniform(0.2, 0.8) * (outer - inner), rng.uniform(0.0, 0.9))
        objects.append((y, _person, (x, y, scale(y))))
    for _, draw, args in sorted(objects, key=lambda item: item[0]):
        draw(canvas, rng, *args)


def _windows(canvas: _Canvas, rng, near, far, height_units: float) -> None:
    """A grid of windows on a facade quadrilateral (x, base row, top row at both ends)."""
    (xa, ya, ta), (xb, yb, tb) = near, far
    floors = max(1, int(height_units / 1.2))
    columns = max(1, int(abs(xb - xa) / max(4.0, abs(ya - ta) / floors)))
    if abs(xb - xa) < 6 or abs(ya - ta) < 8:
        return
    for c in range(columns):
        u0, u1 = (c + 0.25) / columns, (c + 0.75) / columns
        for f in range(floors):
            v0, v1 = (f + 0.3) / floors, (f + 0.75) / floors
            corners = []
            for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1)):
                x = xa + (xb - xa) * u
                base = ya + (yb - ya) * u
                top = ta + (tb - ta) * u
                corners.append((x, base + (top - base) * v))
            if rng.random() < 0.92:
                canvas.detail_polygon(corners, WINDOW)


def _tree(canvas: _Canvas, rng, x: float, y: float, s: float) -> None:
    if s <= 0.3:
        return
    instance = canvas.new_instance("tree", rng)
    trunk_h, trunk_w = rng.uniform(2.0, 3.5) * s, max(1.0, 0.25 * s)
    canvas.rectangle((x - trunk_w / 2, y - trunk_h, x + trunk_w / 2, y), VEGETATION, instance, TRUNK)
    radius = rng.uniform(1.2, 2.4) * s
    cy = y - trunk_h - 0.6 * radius
    for _ in range(4):  # a lumpy canopy
        dx, dy = rng.normal(0, 0.35 * radius, size=2)
        r = radius * rng.uniform(0.6, 1.0)
        canvas.ellipse((x + dx - r, cy + dy - r, x + dx + r, cy + dy + r), VEGETATION, instance)


def _pole(canvas: _Canvas, rng, x: float, y: float, s: float, sign: bool) -> None:
    if s <= 0.2:
        return
    height, half = rng.uniform(4.0, 5.5) * s, max(0.5, 0.06 * s)
    canvas.rectangle((x - half, y - height, x + half, y), POLE, canvas.new_instance("pole", rng))
    if sign:
        size = rng.uniform(0.45, 0.7) * s
        top = y - height
        instance = canvas.new_instance("sign", rng)
        if rng.random() < 0.5:
            canvas.ellipse((x - size, top - size * 0.2, x + size, top + size * 1.8), SIGN, instance)
        else:
            canvas.rectangle((x - size, top, x + size, top + 1.4 * size), SIGN, instance)


def _car(canvas: _Canvas, rng, x: float, y: float, s: float) -> None:
    if s <= 0.15:
        return
    instance = canvas.new_instance("car", rng)
    width, body_h = rng.uniform(3.6, 4.6) * s, rng.uniform(0.9, 1.1) * s
    cabin_h, wheel = rng.uniform(0.6, 0.8) * s, 0.38 * s
    left, right = x - width / 2, x + width / 2
    body_top = y - wheel - body_h
    canvas.rectangle((left, body_top, right, y - wheel * 0.6), CAR, instance)
    cabin = [
        (left + 0.18 * width, body_top),
        (left + 0.3 * width, body_top - cabin_h),
        (right - 0.3 * width, body_top - cabin_h),
        (right - 0.15 * width, body_top),
    ]
    canvas.polygon(cabin, CAR, instance)
    inset = 0.12 * cabin_h
    canvas.detail_polygon(
        [
            (cabin[0][0] + inset, body_top),
            (cabin[1][0] + inset, cabin[1][1] + inset),
            (cabin[2][0] - inset, cabin[2][1] + inset),
            (cabin[3][0] - inset, body_top),
        ],
        CAR_WINDOW,
    )
    for wx in (left + 0.22 * width, right - 0.22 * width):
        canvas.ellipse((wx - wheel, y - 2 * wheel, wx + wheel, y), CAR, instance, WHEEL)


def _person(canvas: _Canvas, rng, x: float, y: float, s: float) -> None:
    if s <= 0.2:
        return
    instance = canvas.new_instance("person", rng)
    height = rng.uniform(1.6, 1.9) * s
    half = 0.2 * s
    head = 0.13 * s
    canvas.polygon(
        [
            (x - half * 0.6, y),
            (x - half, y - height * 0.55),
            (x - half * 0.8, y - height + 2 * head),
            (x + half * 0.8, y - height + 2 * head),
            (x + half, y - height * 0.55),
            (x + half * 0.6, y),
        ],
        PERSON,
        instance,
    )
    canvas.ellipse((x - head, y - height, x + head, y - height + 2 * head), PERSON, instance, HEAD)


def class_histogram(labels: np.ndarray, num_classes: int = 19) -> np.ndarray:
    """Pixel count per trainId (255 and other values outside [0, num_classes) are not counted)."""
    flat = labels.ravel()
    flat = flat[flat < num_classes]
    return np.bincount(flat, minlength=num_classes).astype(np.int64)


def scene_seed(seed: int, domain: str, split: str, index: int) -> np.random.Generator:
    """The generator of one scene: a pure function of (seed, domain, split, index)."""
    domain_word = {"source": 1, "target": 2, "aerial": 3}[domain]
    split_word = {"train": 1, "test": 2}[split]
    return np.random.default_rng([seed, domain_word, split_word, index])


__all__ = [
    "BUILDING",
    "CAR",
    "DOMAIN_STATS",
    "SCENES",
    "PERSON",
    "POLE",
    "ROAD",
    "SIDEWALK",
    "SIGN",
    "SKY",
    "SOURCE_STATS",
    "TARGET_STATS",
    "TERRAIN",
    "VEGETATION",
    "WORLD_CLASSES",
    "Scene",
    "SceneStats",
    "class_histogram",
    "generate_scene",
    "scene_seed",
]
