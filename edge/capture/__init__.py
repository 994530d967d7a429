"""Capture: the site's cameras built from config (`cameras`), one thread per camera (`worker`) handing
each frame to the recorder's queue and to a one-frame "newest" slot for the live path (`newest`),
camera health (`camera_health`, `report`) and C1/C2 pairing (`stream_pair`)."""
