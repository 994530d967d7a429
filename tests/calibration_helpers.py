"""The lens every calibration test's camera has: what intrinsics estimates are checked against."""

from __future__ import annotations

import numpy as np

TRUE_MATRIX = np.array([[520.0, 0.0, 322.0], [0.0, 520.0, 238.0], [0.0, 0.0, 1.0]])
TRUE_DISTORTION = np.array([-0.28, 0.09, 0.0008, -0.0006, 0.0])
