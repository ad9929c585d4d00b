"""`metamask show --png`: edges routed around boxes, the picture non-trivial."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import METAMAE_MASK, tiny_spec
from matplotlib.transforms import Bbox
from PIL import Image

from metamask.pictures.graph import _clear_bend, draw_graph


def test_an_edge_bends_around_a_box_on_its_chord() -> None:
    box = Bbox.from_extents(180, -20, 220, 20)  # astride the straight line from (0,0) to (400,0)
    bend = _clear_bend((0.0, 0.0), (400.0, 0.0), [box], side=1.0)
    assert bend != 0
    cx, cy = 200.0, -bend * 400.0  # the arc's control point; its apex is half-way there
    assert abs(cy / 2) > 20 + 6  # the curve passes the box with air
    assert cx == 200.0
    free = _clear_bend((0.0, 0.0), (400.0, 0.0), [], side=-1.0)
    assert free == -0.15  # nothing in the way: the smallest bend, on the side asked for


def test_the_picture_of_a_four_node_graph(tmp_path: Path) -> None:
    path = draw_graph(tiny_spec(METAMAE_MASK).graph, tmp_path / "g.png", title="tiny")
    image = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert image.std() > 10  # boxes, edges and labels, not a blank page
