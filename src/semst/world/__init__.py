"""The procedural labelled world: street scenes of two domains with exact labels, and aerial photo/map pairs.

- ``layout.py``: street-scene geometry and label maps (Cityscapes trainIds), with domain class statistics.
- ``render.py``: the game-like source rendering, the photo-like target rendering, the parsing rendering.
- ``aerial.py``: paired top-down aerial photos and maps.
- ``dataset.py``: ``write_world`` writes it all in the folder layouts semst's loaders read.
"""

from semst.world.layout import DOMAIN_STATS, WORLD_CLASSES, Scene, SceneStats, generate_scene, scene_seed

__all__ = ["DOMAIN_STATS", "WORLD_CLASSES", "Scene", "SceneStats", "generate_scene", "scene_seed"]
