"""The simulated belt's world: where every object is at any time, in belt millimetres.

Everything is a pure function of the seed and the time, so C1 and C2 (two independent source
objects, possibly in two processes) agree on every object, any frame can be rendered on its own, and
a test can ask for frame 10 000 without rendering the 9 999 before it.

Coordinates follow DESIGN.md: x along the travel direction, y across the belt, origin at the top-left
corner of C1's view. The belt moves objects towards +x. An object is fixed to the belt, so its
x at time t is `belt_offset(t) - anchor`, where `anchor` is its position along the belt at t = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from edge.config import SimulatorConfig

CHUNK_MM = 1000.0
_CHUNK_SEED_OFFSET = 1 << 20

ILLEGAL_MATERIALS = ("clear_pet", "white_opaque", "bluish_pet")
LEGAL_MATERIALS = ("green_pet", "amber_pet", "red_pet", "teal_pet")
SHAPES = ("bottle", "ellipse", "crushed", "tray")

# A belt whose classes differ by shape (`classes_differ_by: shape`), as a PET line where clear PVC
# trays go and clear PET bottles stay: one palette for both classes, mostly clear plastic ...
SHARED_PALETTE = ("clear_pet", "bluish_pet", "white_opaque", "green_pet")
SHARED_PALETTE_SHARES = (0.55, 0.2, 0.1, 0.15)
# ... each class mostly, never only, its own shapes (shares in SHAPES' order) ...
SHAPE_SHARES = {"illegal": (0.05, 0.1, 0.3, 0.55), "legal": (0.55, 0.3, 0.1, 0.05)}
# ... and its own surface: thin matte PVC shows more belt; thick PET walls shine, carry ridges and,
# more often, a label


class Surface(NamedTuple):
    opacity_scale: float
    gloss_scale: float
    ridged: float  # chance of ridges
    labelled: float  # chance of a label (sticker band)


SURFACES = {"illegal": Surface(0.6, 0.3, 0.05, 0.1), "legal": Surface(1.6, 1.4, 0.7, 0.6)}


@dataclass(frozen=True)
class BeltObject:
    """One piece of waste, in its own frame: a polygon in mm around its centre."""

    object_id: int
    cls: str  # "illegal" | "legal"
    material: str
    shape: str
    anchor_mm: float  # position along the belt at t = 0 (x = belt_offset(t) - anchor_mm)
    y_mm: float
    outline_mm: np.ndarray  # N x 2 polygon, already rotated, relative to the centre
    missed_by_sorter: bool  # an illegal object the sorter let through (visible in C2)
    z_order: float
    sticker: tuple[float, float, tuple[int, int, int]] | None  # band start, width (0-1), colour
    ridges: int  # stripes across the object's long axis, 0 for none
    long_axis_rad: float
    opacity_scale: float = 1.0  # the material's opacity and gloss on this object (its wall, its finish)
    gloss_scale: float = 1.0

    def x_at(self, belt_offset_mm: float) -> float:
        return belt_offset_mm - self.anchor_mm

    @property
    def half_extent_mm(self) -> float:
        return float(np.abs(self.outline_mm).max())


@dataclass(frozen=True)
class CameraView:
    """What one camera sees of the belt: a top-down view with square pixels."""

    camera_id: str
    width_px: int
    height_px: int
    x_origin_mm: float  # belt x of the image's left edge
    mm_per_px: float
    clock_offset_ns: int  # this camera's clock minus the true clock

    @property
    def length_mm(self) -> float:
        return self.width_px * self.mm_per_px

    def pixel_to_belt_homography(self) -> np.ndarray:
        """3x3 matrix mapping homogeneous pixel (u, v, 1) to belt (x, y, 1) in mm."""
        s = self.mm_per_px
        return np.array([[s, 0.0, self.x_origin_mm], [0.0, s, 0.0], [0.0, 0.0, 1.0]])


def _speed_terms(seed: int) -> tuple[tuple[float, float, float], ...]:
    """Three slow wobbles (amplitude, angular frequency, phase) whose amplitudes add up to 1."""
    rng = np.random.default_rng([seed, 7])
    periods_s = (1.7, 5.3, 13.1)
    weights = rng.uniform(0.5, 1.0, size=3)
    weights /= weights.sum()
    phases = rng.uniform(0, 2 * math.pi, size=3)
    return tuple(
        (float(w), 2 * math.pi / p, float(ph)) for w, p, ph in zip(weights, periods_s, phases, strict=True)
    )


class BeltWorld:
    """Belt motion and the object stream of one simulated installation."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._terms = _speed_terms(config.seed)
        self._chunk = lru_cache(maxsize=256)(self._chunk_objects)

    # --- motion -------------------------------------------------------------------------------
    def speed_mm_s(self, t_s: float) -> float:
        wobble = sum(a * math.cos(w * t_s + ph) for a, w, ph in self._terms)
        return self.config.belt_speed_mm_s * (1.0 + self.config.speed_jitter * wobble)

    def belt_offset_mm(self, t_s: float) -> float:
        """Distance the belt has travelled since t = 0: the exact integral of speed_mm_s."""
        v0 = self.config.belt_speed_mm_s
        wobble = sum(a / w * (math.sin(w * t_s + ph) - math.sin(ph)) for a, w, ph in self._terms)
        return v0 * t_s + v0 * self.config.speed_jitter * wobble

    # --- objects ------------------------------------------------------------------------------
    def objects_between(self, anchor_lo: float, anchor_hi: float) -> list[BeltObject]:
        # a touching neighbour may sit just outside its own chunk, hence one chunk of slack
        first = math.floor(anchor_lo / CHUNK_MM) - 1
        last = math.floor(anchor_hi / CHUNK_MM) + 1
        found = []
        for chunk in range(first, last + 1):
            found.extend(obj for obj in self._chunk(chunk) if anchor_lo <= obj.anchor_mm < anchor_hi)
        return found

    def objects_in_view(self, view: CameraView, t_s: float, removed_by_sorter: bool) -> list[BeltObject]:
        """Objects overlapping the view at t_s; downstream of the sorter, removed ones are gone."""
        offset = self.belt_offset_mm(t_s)
        margin = self.config.object_size_mm[1]
        lo = offset - (view.x_origin_mm + view.length_mm + margin)
        hi = offset - (view.x_origin_mm - margin)
        objects = self.objects_between(lo, hi)
        if removed_by_sorter:
            objects = [o for o in objects if o.cls == "legal" or o.missed_by_sorter]
        return sorted(objects, key=lambda o: o.z_order)

    def _chunk_objects(self, chunk: int) -> tuple[BeltObject, ...]:
        config = self.config
        rng = np.random.default_rng([config.seed, chunk + _CHUNK_SEED_OFFSET])
        count = rng.poisson(config.objects_per_m * CHUNK_MM / 1000.0)
        objects: list[BeltObject] = []
        previous: BeltObject | None = None
        for index in range(count):
            touching = previous is not None and rng.random() < config.touching_fraction
            obj = _random_object(rng, config, chunk, index, previous if touching else None)
            objects.append(obj)
            previous = obj
        return tuple(objects)


def _random_object(
    rng: np.random.Generator,
    config: SimulatorConfig,
    chunk: int,
    index: int,
    neighbour: BeltObject | None,
) -> BeltObject:
    illegal = rng.random() < config.illegal_fraction
    cls = "illegal" if illegal else "legal"
    by_shape = config.classes_differ_by == "shape"
    if by_shape:
        material = str(rng.choice(SHARED_PALETTE, p=SHARED_PALETTE_SHARES))
        shape = str(rng.choice(SHAPES, p=SHAPE_SHARES[cls]))
    else:
        material = str(rng.choice(ILLEGAL_MATERIALS if illegal else LEGAL_MATERIALS))
        shape = str(rng.choice(SHAPES))  # same shape distribution for both classes
    lo, hi = config.object_size_mm
    length = rng.uniform(lo, hi)
    aspect = {"bottle": rng.uniform(2.0, 3.2), "tray": rng.uniform(1.0, 1.8)}.get(
        shape, rng.uniform(1.0, 2.2)
    )
    width = length / aspect
    angle = rng.uniform(0, math.pi)
    outline = _outline(rng, shape, length, width, angle)
    half = float(np.abs(outline).max())
    margin = min(half * 0.6, config.belt_width_mm / 2)
    if neighbour is not None:
        # touching pair: right next to the previous object, as a human-dropped heap would be
        direction = rng.uniform(0, 2 * math.pi)
        distance = 0.85 * (half + neighbour.half_extent_mm) * rng.uniform(0.6, 1.0)
        anchor = neighbour.anchor_mm + distance * math.cos(direction)
        y = float(
            np.clip(neighbour.y_mm + distance * math.sin(direction), margin, config.belt_width_mm - margin)
        )
    else:
        anchor = (chunk + rng.random()) * CHUNK_MM
        y = float(rng.uniform(margin, config.belt_width_mm - margin))
    sticker = None
    if rng.random() < (SURFACES[cls].labelled if by_shape else 0.4):
        colour = tuple(
            int(c) for c in rng.choice([[235, 235, 230], [200, 40, 40], [30, 60, 160], [240, 200, 40]])
        )
        sticker = (float(rng.uniform(0.25, 0.55)), float(rng.uniform(0.15, 0.3)), colour)
    missed_by_sorter = bool(illegal and rng.random() < config.missed_illegal_rate)
    z_order = float(rng.random())
    if by_shape:
        surface = SURFACES[cls]
        opacity_scale, gloss_scale = surface.opacity_scale, surface.gloss_scale
        ridges = int(rng.integers(3, 9)) if rng.random() < surface.ridged else 0
    else:
        opacity_scale, gloss_scale = 1.0, 1.0
        ridges = int(rng.integers(3, 9)) if shape == "bottle" and rng.random() < 0.7 else 0
    return BeltObject(
        object_id=(chunk + _CHUNK_SEED_OFFSET) * 1000 + index,
        cls=cls,
        material=material,
        shape=shape,
        anchor_mm=float(anchor),
        y_mm=y,
        outline_mm=outline,
        missed_by_sorter=missed_by_sorter,
        z_order=z_order,
        sticker=sticker,
        ridges=ridges,
        long_axis_rad=float(angle),
        opacity_scale=opacity_scale,
        gloss_scale=gloss_scale,
    )


def _outline(rng: np.random.Generator, shape: str, length: float, width: float, angle: float) -> np.ndarray:
    """A deformed polygon (mm, centred) of the given kind, rotated by angle."""
    n = 48
    theta = np.linspace(0, 2 * math.pi, n, endpoint=False)
    a, b = length / 2, width / 2
    if shape == "tray":  # rounded rectangle (superellipse)
        c, s = np.cos(theta), np.sin(theta)
        x = a * np.sign(c) * np.abs(c) ** 0.4
        y = b * np.sign(s) * np.abs(s) ** 0.4
    elif shape == "bottle":  # body plus a narrower neck on one end
        c, s = np.cos(theta), np.sin(theta)
        x = a * np.sign(c) * np.abs(c) ** 0.6
        y = b * np.sign(s) * np.abs(s) ** 0.6
        neck = x > 0.55 * a
        y = np.where(neck, y * 0.45, y)
    else:  # ellipse, or a crushed blob with strong deformation
        x, y = a * np.cos(theta), b * np.sin(theta)
    strength = 0.12 if shape == "crushed" else 0.05
    harmonics = rng.normal(0, strength, size=(4, 2))
    radial = 1 + sum(
        h[0] * np.cos((k + 2) * theta) + h[1] * np.sin((k + 2) * theta) for k, h in enumerate(harmonics)
    )
    x, y = x * radial, y * radial
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (np.stack([x, y], axis=1) @ rot.T).astype(np.float64)


def camera_view(camera_id: str, resolution: tuple[int, int], config: SimulatorConfig) -> CameraView:
    """Both cameras look straight down on the full belt width; C2 sits c1_to_c2_mm downstream."""
    width, height = resolution
    offset_ms = config.c2_clock_offset_ms if camera_id == "c2" else 0.0
    return CameraView(
        camera_id=camera_id,
        width_px=width,
        height_px=height,
        x_origin_mm=config.c1_to_c2_mm if camera_id == "c2" else 0.0,
        mm_per_px=config.belt_width_mm / height,
        clock_offset_ns=round(offset_ms * 1e6),
    )
