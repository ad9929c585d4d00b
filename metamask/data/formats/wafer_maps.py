"""Wafer maps: the WM-811K encoding, the DABS image transform, and a procedural generator.

A wafer map is a 2-D array of die states, 0 = outside the wafer, 1 = good die, 2 = defective
die, of a size that varies per product. DABS turns it into an H x W x 3 integer image (state x
127.5 -> 0 / 127 / 255 in every channel), resizes it to 32 x 32 with bilinear filtering (aspect
ratio not kept) and scales to [0, 1]. No public wheel ships WM-811K, so the embedded stand-in
draws maps of the nine DABS failure classes procedurally, in the same encoding.
"""

from __future__ import annotations

import numpy as np

# DABS label order; "unlabeled" maps share label 0 with "none"
WAFER_CLASSES = (
    "none",
    "random",
    "donut",
    "scratch",
    "center",
    "loc",
    "edge-loc",
    "edge-ring",
    "near-full",
)
WAFER_LABELS = {name: i for i, name in enumerate(WAFER_CLASSES)} | {"unlabeled": 0}
IMAGE_SIZE = 32


def encode_states(states: np.ndarray) -> np.ndarray:
    """Die states (H, W) in {0, 1, 2} -> the DABS (H, W, 3) int image (x 127.5, truncated)."""
    grey = (np.asarray(states, dtype=np.float64) * 127.5).astype(np.int64)
    return np.repeat(grey[:, :, None], 3, axis=2)


def wafer_image(pixels: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """A DABS wafer image (H, W, 3) of 0..255 -> (3, size, size) float32 in [0, 1].

    As DABS: cast to uint8, PIL RGB, bilinear resize to size x size, scale by 1/255.
    """
    from PIL import Image  # here, not at the top: the module is imported with metamask.data

    image = Image.fromarray(np.asarray(pixels).astype(np.uint8)).convert("RGB")
    resized = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0


def synthetic_wafer(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Die states (H, W) of one procedurally drawn wafer with failure pattern ``kind``.

    The wafer is the ellipse inscribed in a random H x W grid (24-48 dies a side); every die
    fails with a small background rate, plus the pattern's own failures: a disc at the centre
    (center), a ring at mid radius (donut), a band at the rim (edge-ring), a blob inside (loc) or
    at the rim (edge-loc), a thin line (scratch), uniform high (random) or near-total (near-full)
    failure, or nothing more (none).
    """
    if kind not in WAFER_CLASSES:
        raise ValueError(f"unknown wafer failure type {kind!r}; expected one of {WAFER_CLASSES}")
    h = int(rng.integers(24, 49))
    w = int(np.clip(h + rng.integers(-4, 5), 20, 52))
    yy, xx = np.mgrid[0:h, 0:w]
    dy, dx = (yy - (h - 1) / 2) / (h / 2), (xx - (w - 1) / 2) / (w / 2)
    radius, angle = np.hypot(dy, dx), np.arctan2(dy, dx)
    wafer = radius <= 1.0
    p_fail = np.full((h, w), rng.uniform(0.005, 0.04))
    density = rng.uniform(0.6, 0.9)
    if kind == "random":
        p_fail[:] = rng.uniform(0.12, 0.35)
    elif kind == "near-full":
        p_fail[:] = rng.uniform(0.75, 0.95)
    elif kind == "center":
        p_fail[radius < rng.uniform(0.15, 0.35)] = density
    elif kind == "donut":
        mid, half = rng.uniform(0.4, 0.6), rng.uniform(0.1, 0.18)
        p_fail[np.abs(radius - mid) < half] = density
    elif kind == "edge-ring":
        start, extent = rng.uniform(-np.pi, np.pi), rng.uniform(1.5 * np.pi, 2 * np.pi)
        in_arc = np.mod(angle - start, 2 * np.pi) < extent
        p_fail[(radius > rng.uniform(0.82, 0.9)) & in_arc] = density
    elif kind in ("loc", "edge-loc"):
        r0 = rng.uniform(0.2, 0.6) if kind == "loc" else rng.uniform(0.88, 1.0)
        t0 = rng.uniform(-np.pi, np.pi)
        cy, cx = r0 * np.sin(t0), r0 * np.cos(t0)
        size = rng.uniform(0.12, 0.25) if kind == "loc" else rng.uniform(0.18, 0.35)
        p_fail[np.hypot(dy - cy, dx - cx) < size] = density
    elif kind == "scratch":
        t0, length = rng.uniform(-np.pi, np.pi), rng.uniform(0.6, 1.4)
        y0, x0 = rng.uniform(-0.5, 0.5, size=2)
        bend = rng.uniform(-0.6, 0.6)
        for s in np.linspace(0.0, length, 4 * max(h, w)):
            t = t0 + bend * s
            py, px = y0 + s * np.sin(t), x0 + s * np.cos(t)
            iy, ix = round(py * h / 2 + (h - 1) / 2), round(px * w / 2 + (w - 1) / 2)
            if 0 <= iy < h and 0 <= ix < w:
                p_fail[iy, ix] = 0.9
    failed = rng.random((h, w)) < p_fail
    return np.where(wafer, 1 + failed, 0).astype(np.int64)
