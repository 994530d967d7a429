"""Named simulated belts, so that benchmarks and tests ask for "the hard belt" and mean one thing.

`standard` is the simulator's default: the classes differ in colour, a fifth of the objects touch a
neighbour, lamps are steady. `crowded` is the standard belt with the hard belt's crowding only.
`hard` is what plants' footage has and the standard belt never shows (tracker issue 18): one palette
for both classes, told apart only by shape, surface and transparency; a crowded belt where most
objects touch or overlap a neighbour; flickering lamps.
"""

from __future__ import annotations

from typing import Any

BELTS: dict[str, dict[str, Any]] = {
    "standard": {},
    # the hard belt's crowding alone, colours as on the standard belt: what touching objects do
    "crowded": {"touching_fraction": 0.6, "objects_per_m": 8.0},
    "hard": {
        "classes_differ_by": "shape",
        "touching_fraction": 0.6,
        "objects_per_m": 8.0,
        "lamp_flicker": 0.12,
    },
}


# what a belt looks like, as opposed to where it runs (speed, distances, seed): a starter model for a
# site renders its frames with these settings of the site's own simulator
LOOK_FIELDS = frozenset({"classes_differ_by", "touching_fraction", "lamp_flicker", "cameras_alike"})


def belt_settings(name: str) -> dict[str, Any]:
    """The `simulator` settings of a named belt (to merge over a site's or a benchmark's own)."""
    if name not in BELTS:
        raise ValueError(f"unknown simulated belt {name!r}: choose one of {', '.join(BELTS)}")
    return dict(BELTS[name])
