"""Pixels for the simulated belt: belt texture, plastics, lighting and sensor noise.

The point is to make the weakly supervised problem honest. C1 and C2 see different belt texture,
lighting and white balance (the background bias a classifier would otherwise learn instead of the
objects), objects of both classes share shapes, stickers and ridges, and the classes differ only in
material: colour, translucency and gloss, with overlaps (teal legal PET versus bluish illegal PET).
On a belt whose classes differ by shape (the hard belt, `edge/simulator/belts.py`) they share one
palette and differ by shape, wall transparency, gloss and ridges instead; lamps may flicker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.simulator.world import BeltObject, BeltWorld, CameraView
from edge.sources.base import FrameTruth, ObjectTruth

LABEL_ILLEGAL = 1
LABEL_LEGAL = 2


@dataclass(frozen=True)
class Material:
    colour: tuple[int, int, int]
    alpha: float  # body opacity; clear plastics mostly show the belt through them
    gloss: float
    edge_alpha: float
    refraction_px: float


MATERIALS = {
    "clear_pet": Material((226, 230, 233), 0.22, 0.7, 0.75, 2.0),
    "white_opaque": Material((228, 226, 219), 0.95, 0.25, 0.95, 0.0),
    "bluish_pet": Material((150, 188, 224), 0.45, 0.6, 0.7, 1.5),
    "green_pet": Material((62, 150, 82), 0.6, 0.55, 0.75, 1.0),
    "amber_pet": Material((172, 106, 42), 0.62, 0.55, 0.75, 1.0),
    "red_pet": Material((176, 56, 50), 0.6, 0.55, 0.75, 1.0),
    "teal_pet": Material((66, 150, 150), 0.55, 0.55, 0.7, 1.0),
}


@dataclass(frozen=True)
class CameraLook:
    """How one camera renders the same belt: its own texture, white balance and light."""

    belt_colour: tuple[float, float, float]
    texture_contrast: float
    texture_scale: float
    white_balance: tuple[float, float, float]
    gain: float
    light_side: float  # brightness gradient across the belt, as from a lamp on one side


LOOKS = {
    "c1": CameraLook((58, 60, 67), 22.0, 1.0, (1.0, 1.0, 1.04), 1.0, 0.12),
    "c2": CameraLook((72, 67, 56), 16.0, 1.6, (1.07, 1.0, 0.9), 0.93, -0.08),
}


def _periodic_noise(rng: np.random.Generator, height: int, width: int, scale_px: float) -> np.ndarray:
    """Smooth noise that wraps around in x (and y), so the belt loop has no visible seam."""
    white = rng.standard_normal((height, width))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    spectrum = np.fft.fft2(white) * np.exp(-((radius * scale_px) ** 2))
    noise = np.real(np.fft.ifft2(spectrum))
    return (noise - noise.mean()) / (noise.std() + 1e-9)


def _belt_tile(rng: np.random.Generator, view: CameraView, look: CameraLook) -> np.ndarray:
    """One full loop of belt texture, H x T x 3 float32, wrapping in x."""
    height = view.height_px
    length = max(4 * view.width_px, 2048)
    coarse = _periodic_noise(rng, height, length, 12.0 * look.texture_scale)
    fine = _periodic_noise(rng, height, length, 1.5 * look.texture_scale)
    value = look.texture_contrast * (0.7 * coarse + 0.5 * fine)
    seam_every = max(int(500.0 / view.mm_per_px), 8)  # belt splices every half metre
    for start in range(0, length, seam_every):
        value[:, start : start + 3] -= 25.0
    for _ in range(length // 40):  # scuff marks along the travel direction
        y = int(rng.integers(0, height))
        x = int(rng.integers(0, length))
        streak = int(rng.integers(10, 60))
        value[y : y + 2, x : x + streak] += rng.uniform(10, 30)
    tile = np.empty((height, length, 3), np.float32)
    for channel in range(3):
        tile[..., channel] = look.belt_colour[channel] + value
    return tile


def _illumination(view: CameraView, look: CameraLook) -> np.ndarray:
    """Vignetting times a lamp-side gradient, H x W x 3 including white balance."""
    v, u = np.mgrid[0 : view.height_px, 0 : view.width_px].astype(np.float32)
    cu, cv = view.width_px / 2, view.height_px / 2
    r2 = ((u - cu) / cu) ** 2 + ((v - cv) / cv) ** 2
    vignette = 1.0 - 0.18 * r2
    side = 1.0 + look.light_side * (v / view.height_px - 0.5)
    base = (vignette * side * look.gain)[..., None]
    return (base * np.array(look.white_balance, np.float32)).astype(np.float32)


class BeltRenderer:
    """Renders what one camera sees of a BeltWorld at any time, with its ground truth."""

    def __init__(self, world: BeltWorld, view: CameraView) -> None:
        self.world = world
        self.view = view
        self.look = LOOKS["c1" if world.config.cameras_alike else view.camera_id]
        rng = np.random.default_rng([world.config.seed, 11, 1 if view.camera_id == "c1" else 2])
        self._tile = _belt_tile(rng, view, self.look)
        self._light = _illumination(view, self.look)
        self._drift_phase = float(rng.uniform(0, 2 * math.pi))

    def render(self, t_s: float, seq: int, removed_by_sorter: bool) -> tuple[np.ndarray, FrameTruth]:
        view, config = self.view, self.world.config
        offset = self.world.belt_offset_mm(t_s)
        image = self._belt_at(offset)
        labels = np.zeros((view.height_px, view.width_px), np.uint8)
        truths = []
        for obj in self.world.objects_in_view(view, t_s, removed_by_sorter):
            truth = self._draw_object(image, labels, obj, offset)
            if truth is not None:
                truths.append(truth)
        drift = 1.0 + config.lighting_drift * (
            0.7 * math.sin(2 * math.pi * t_s / 97.0 + self._drift_phase)
            + 0.3 * math.sin(2 * math.pi * t_s / 23.0 + 2 * self._drift_phase)
        )
        image *= self._light * drift
        if config.lamp_flicker > 0:
            image *= self._flicker(seq)
        if config.noise_sigma > 0:
            rng = np.random.default_rng([config.seed, 13, seq, 1 if view.camera_id == "c1" else 2])
            image += rng.standard_normal(image.shape, dtype=np.float32) * config.noise_sigma
        # rendered along the belt, stored row-major like any camera's frame (every consumer is faster)
        pixels = np.clip(image, 0, 255).astype(np.uint8, order="C")
        return pixels, FrameTruth(label_map=np.ascontiguousarray(labels), objects=tuple(truths))

    def _flicker(self, seq: int) -> np.ndarray:
        """Lamps on mains power beat against the exposure: each frame its own brightness and tint, and
        a rolling shutter catches them as soft bands across the rows (H x 1 x 3)."""
        config = self.world.config
        amount = config.lamp_flicker
        rng = np.random.default_rng([config.seed, 17, seq, 1 if self.view.camera_id == "c1" else 2])
        gain = 1.0 + amount * rng.uniform(-1.0, 1.0)
        tint = 1.0 + 0.2 * amount * rng.uniform(-1.0, 1.0, size=3)
        rows = np.arange(self.view.height_px, dtype=np.float32) / self.view.height_px
        bands = 1.0 + 0.5 * amount * np.sin(2 * math.pi * (1.5 * rows + rng.uniform(0.0, 1.0)))
        return (gain * bands[:, None, None] * tint[None, None, :]).astype(np.float32)

    def _belt_at(self, offset_mm: float) -> np.ndarray:
        """The belt texture moved by offset_mm, with sub-pixel shifts interpolated."""
        tile_length = self._tile.shape[1]
        shift = (self.view.x_origin_mm - offset_mm) / self.view.mm_per_px
        whole = math.floor(shift)
        frac = np.float32(shift - whole)
        columns = (np.arange(self.view.width_px + 1) + whole) % tile_length
        strip = self._tile[:, columns]
        return strip[:, :-1] * (1 - frac) + strip[:, 1:] * frac

    def _draw_object(
        self, image: np.ndarray, labels: np.ndarray, obj: BeltObject, offset_mm: float
    ) -> ObjectTruth | None:
        view = self.view
        x_mm = obj.x_at(offset_mm)
        centre = np.array([(x_mm - view.x_origin_mm) / view.mm_per_px, obj.y_mm / view.mm_per_px])
        points = obj.outline_mm / view.mm_per_px + centre
        u0, v0 = np.floor(points.min(axis=0)).astype(int) - 2
        u1, v1 = np.ceil(points.max(axis=0)).astype(int) + 2
        u0c, v0c = max(u0, 0), max(v0, 0)
        u1c, v1c = min(u1, view.width_px), min(v1, view.height_px)
        if u0c >= u1c or v0c >= v1c:
            return None
        material = MATERIALS[obj.material]
        local = np.round((points - [u0c, v0c]) * 16).astype(np.int32)
        shape = (v1c - v0c, u1c - u0c)
        coverage = np.zeros(shape, np.uint8)
        cv2.fillPoly(coverage, [local], 255, lineType=cv2.LINE_AA, shift=4)
        edges = np.zeros(shape, np.uint8)
        cv2.polylines(edges, [local], True, 255, thickness=2, lineType=cv2.LINE_AA, shift=4)
        cover = coverage.astype(np.float32) / 255.0
        if not cover.any():
            return None

        colour, opacity = self._surface(obj, material, centre, (u0c, v0c), shape)
        region = image[v0c:v1c, u0c:u1c]
        if material.refraction_px:
            shift = round(material.refraction_px * math.cos(obj.long_axis_rad + math.pi / 2))
            region_under = np.roll(region, shift, axis=0)
        else:
            region_under = region
        a = (cover * opacity)[..., None]
        blended = region_under * (1 - a) + colour * a
        edge_a = (edges.astype(np.float32) / 255.0 * material.edge_alpha)[..., None]
        edge_colour = np.minimum(np.array(material.colour, np.float32) * 1.1 + 25, 255)
        image[v0c:v1c, u0c:u1c] = blended * (1 - edge_a) + edge_colour * edge_a
        label = LABEL_ILLEGAL if obj.cls == "illegal" else LABEL_LEGAL
        labels[v0c:v1c, u0c:u1c][coverage >= 128] = label

        x_min, y_min = obj.outline_mm.min(axis=0)
        x_max, y_max = obj.outline_mm.max(axis=0)
        return ObjectTruth(
            object_id=obj.object_id,
            cls=obj.cls,
            material=obj.material,
            x_mm=x_mm,
            y_mm=obj.y_mm,
            extent_mm=(x_mm + x_min, obj.y_mm + y_min, x_mm + x_max, obj.y_mm + y_max),
        )

    def _surface(
        self,
        obj: BeltObject,
        material: Material,
        centre: np.ndarray,
        origin: tuple[int, int],
        shape: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Colour (h x w x 3) and opacity (h x w) of the object's surface: shading, gloss, ridges."""
        v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
        du = u + origin[0] - centre[0]
        dv = v + origin[1] - centre[1]
        ca, sa = math.cos(obj.long_axis_rad), math.sin(obj.long_axis_rad)
        along = du * ca + dv * sa
        across = -du * sa + dv * ca
        rotated = obj.outline_mm @ np.array([[ca, -sa], [sa, ca]]) / self.view.mm_per_px
        half_len = max(float(np.abs(rotated[:, 0]).max()), 1.0)
        half_wid = max(float(np.abs(rotated[:, 1]).max()), 1.0)
        tint = np.random.default_rng(obj.object_id).integers(-10, 11, size=3)
        base = np.clip(np.array(material.colour) + tint, 0, 255).astype(np.float32)
        shading = 1.0 - 0.3 * np.clip((across / half_wid) ** 2, 0, 1)
        gloss = material.gloss * obj.gloss_scale
        highlight = gloss * 70.0 * np.exp(-(((across - 0.35 * half_wid) / (0.12 * half_wid)) ** 2))
        if obj.ridges:
            shading = shading * (1 - 0.12 * (0.5 + 0.5 * np.cos(2 * math.pi * obj.ridges * along / half_len)))
        colour = base[None, None, :] * shading[..., None] + highlight[..., None]
        opacity = np.full(shape, min(material.alpha * obj.opacity_scale, 1.0), np.float32)
        opacity = np.clip(opacity + gloss * highlight / 255.0, 0, 1)
        if obj.sticker is not None:
            start, width, sticker_colour = obj.sticker
            position = along / (2 * half_len) + 0.5
            band = (position >= start) & (position < start + width)
            colour[band] = np.array(sticker_colour, np.float32) * shading[band][:, None]
            opacity[band] = 1.0
        return colour, opacity
