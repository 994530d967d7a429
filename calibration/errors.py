"""The one error the calibration library raises: a technician reads its message, not a traceback."""


class CalibrationError(ValueError):
    """Bad input or an estimate not good enough to trust; the message says what, where and why."""
