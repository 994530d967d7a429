"""The calibration board as a file to print: the exact board the calibrate steps expect, at its true
size, with its spec (dictionary included) written under it and in the PDF's title, so the printout
and the `--board` argument can be checked against each other."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from calibration import Board, CalibrationError

MARGIN_MM = 15.0
MM_PER_INCH = 25.4


def write_board(board: Board, out: Path, dpi: int = 300) -> Path:
    """A PDF (or PNG) of `board` at `dpi`; printed at 100 % its squares measure `square_mm`."""
    if out.suffix.lower() not in (".pdf", ".png"):
        raise CalibrationError(f"{out}: the board is written as .pdf or .png")
    px_per_mm = dpi / MM_PER_INCH
    printed = board.render(px_per_mm)
    margin = round(MARGIN_MM * px_per_mm)
    page = np.full((printed.shape[0] + 2 * margin, printed.shape[1] + 2 * margin), 255, np.uint8)
    page[margin : margin + printed.shape[0], margin : margin + printed.shape[1]] = printed
    caption = f"beltcam board {board.describe()} - print at 100 %: a square is {board.square_mm:g} mm"
    scale = max(0.4, margin / 90)
    cv2.putText(page, caption, (margin, page.shape[0] - margin // 3), cv2.FONT_HERSHEY_SIMPLEX, scale, 0,
                max(1, round(scale * 2)), cv2.LINE_AA)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(page)
    if out.suffix.lower() == ".pdf":
        image.save(out, "PDF", resolution=float(dpi), title=f"beltcam calibration board {board.describe()}")
    else:
        image.save(out, "PNG", dpi=(dpi, dpi))
    return out
