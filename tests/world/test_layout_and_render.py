"""The procedural world: deterministic scenes, exact labels, the domains' class statistics, renderings that
keep every pixel's class, and paired aerial photos and maps."""

from __future__ import annotations

import numpy as np
import pytest

from semst.world.aerial import MAP_COLORS, generate_aerial, render_aerial, render_map
from semst.world.layout import (
    BUILDING,
    CAR,
    DOMAIN_STATS,
    PERSON,
    POLE,
    ROAD,
    SIGN,
    SKY,
    VEGETATION,
    WORLD_CLASSES,
    class_histogram,
    generate_scene,
    scene_seed,
)
from semst.world.render import PARSING_COLORS, render_parsing, render_source, render_target


def _fractions(domain: str, count: int = 30) -> np.ndarray:
    total = np.zeros(19, np.int64)
    for i in range(count):
        total += class_histogram(
            generate_scene(scene_seed(0, domain, "train", i), DOMAIN_STATS[domain]).labels
        )
    return total / total.sum()


def test_scenes_are_deterministic_and_vary_with_the_seed():
    a = generate_scene(scene_seed(3, "target", "train", 7), DOMAIN_STATS["target"])
    b = generate_scene(scene_seed(3, "target", "train", 7), DOMAIN_STATS["target"])
    c = generate_scene(scene_seed(4, "target", "train", 7), DOMAIN_STATS["target"])
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.instances, b.instances)
    assert not np.array_equal(a.labels, c.labels)
    assert a.labels.shape == (256, 512) and a.labels.dtype == np.uint8


def test_labels_use_only_the_world_classes_and_sky_is_above_the_road():
    for i in range(10):
        scene = generate_scene(scene_seed(0, "source", "test", i), DOMAIN_STATS["source"], 256, 128)
        assert set(np.unique(scene.labels)) <= set(WORLD_CLASSES)
        assert scene.labels.shape == (128, 256)
        sky_rows = np.nonzero((scene.labels == SKY).any(axis=1))[0]
        road_rows = np.nonzero((scene.labels == ROAD).any(axis=1))[0]
        assert sky_rows.min() == 0 and road_rows.max() == 127 and sky_rows.min() < road_rows.min()


def test_domains_differ_in_class_statistics_as_gta5_and_cityscapes():
    """Figure 1 of the paper: the source has much more sky and road, the target much more building,
    vegetation and car."""
    source, target = _fractions("source"), _fractions("target")
    assert source[SKY] > 1.8 * target[SKY] and source[ROAD] > 1.3 * target[ROAD]
    for label in (BUILDING, VEGETATION, CAR):
        assert target[label] > 3 * source[label], WORLD_CLASSES[label]
    for label in (POLE, SIGN, PERSON):  # thin and small classes exist in both domains
        assert source[label] > 0 and target[label] > 0, WORLD_CLASSES[label]


@pytest.mark.parametrize("domain", ["source", "target"])
def test_renderings_are_deterministic_images_of_the_scene(domain):
    render = render_source if domain == "source" else render_target
    scene = generate_scene(scene_seed(0, domain, "train", 1), DOMAIN_STATS[domain], 128, 64)
    a = render(scene, np.random.default_rng(5))
    b = render(scene, np.random.default_rng(5))
    assert a.shape == (64, 128, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    # Different classes look different: the mean colours of sky and road are far apart.
    sky, road = a[scene.labels == SKY].mean(0), a[scene.labels == ROAD].mean(0)
    assert np.abs(sky - road).sum() > 60


def test_source_is_flat_and_target_is_textured():
    """Game-like flat shading versus photo-like texture: neighbouring road pixels of a row are equal in the
    source rendering (its haze changes only with the row) and differ in the target rendering."""
    step = {}
    for domain, render in (("source", render_source), ("target", render_target)):
        values = []
        for i in range(5):
            rng = scene_seed(0, domain, "train", i)
            scene = generate_scene(rng, DOMAIN_STATS[domain])
            image = render(scene, rng).astype(float)
            road = (scene.labels == ROAD) & (scene.details == 0)
            both = road[:, 1:] & road[:, :-1]
            values.append(np.abs(image[:, 1:] - image[:, :-1])[both].mean())
        step[domain] = np.mean(values)
    assert step["source"] < 0.5 and step["target"] > 5


def test_parsing_rendering_is_the_cityscapes_palette_of_the_labels():
    scene = generate_scene(scene_seed(0, "target", "train", 2), DOMAIN_STATS["target"], 128, 64)
    image = render_parsing(scene)
    for label, color in PARSING_COLORS.items():
        assert (image[scene.labels == label] == color).all()


def test_aerial_pairs_share_the_layout():
    rng = scene_seed(0, "aerial", "train", 0)
    layout = generate_aerial(rng, 96)
    photo, map_image = render_aerial(layout, rng), render_map(layout)
    assert photo.shape == map_image.shape == (96, 96, 3)
    allowed = {tuple(c) for c in MAP_COLORS.values()} | {(196, 186, 178)}  # + building outlines
    assert {tuple(c) for c in map_image.reshape(-1, 3)} <= allowed
    # Map colours follow the layout exactly; cars appear in photos only.
    water = layout.areas == 6
    if water.any():
        assert (map_image[water] == MAP_COLORS[6]).all()
    again = generate_aerial(scene_seed(0, "aerial", "train", 0), 96)
    assert np.array_equal(again.areas, layout.areas)
