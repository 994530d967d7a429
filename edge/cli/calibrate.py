"""`beltcam calibrate ...`: the subcommands a technician runs when installing on a belt."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import yaml
from pydantic import ValidationError

from calibration import ActuatorGeometry, Board, CalibrationError, draw_validation
from edge.calibrate.clips import capture_board_images, load_clip
from edge.calibrate.printed_board import write_board
from edge.calibrate.session import CalibrationSession
from edge.cli.common import add_config, finite, non_negative, number_type, open_store, positive
from edge.config import SiteConfig
from edge.store.frame_store import FrameStore, utc_now
from firmware_bridge.planner import MAX_NOZZLES

CLIP_HELP = "'latest' (newest recording of the camera), a recording id, a video file or an image folder"


def _origin(text: str) -> tuple[float, float]:
    try:
        x, y = (finite(part) for part in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected X,Y in millimetres, got {text!r}") from None
    return x, y


def add_parsers(commands: argparse._SubParsersAction) -> None:
    calibrate = commands.add_parser("calibrate", help="camera, belt and actuator calibration")
    steps = calibrate.add_subparsers(dest="calibrate_command", required=True)

    intrinsics = steps.add_parser("intrinsics", help="lens model from a folder of board images")
    add_config(intrinsics)
    intrinsics.add_argument("--camera", choices=["c1", "c2"], required=True)
    intrinsics.add_argument("--board", required=True, help="e.g. charuco:7x5:40:30 or chessboard:9x6:25")
    intrinsics.add_argument("--max-rms", type=positive, default=1.0, help="refuse a fit above this (px)")
    intrinsics.add_argument("folder", type=Path, nargs="?", help="folder of board images")
    intrinsics.add_argument(
        "--capture",
        type=number_type(0, integer=True),
        metavar="N",
        help="take N images from the live camera instead",
    )
    intrinsics.add_argument("--every", type=non_negative, default=2.0, help="seconds between captured images")

    plane = steps.add_parser(
        "plane", help="image-to-belt mapping from a board on the belt or surveyed points"
    )
    add_config(plane)
    plane.add_argument("--camera", choices=["c1", "c2"], required=True)
    source = plane.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="photo of a ChArUco board or ArUco markers on the belt")
    source.add_argument("--points", type=Path, help="CSV u,v,x_mm,y_mm[,holdout] of surveyed points")
    plane.add_argument("--board", help="board spec (with --image)")
    plane.add_argument("--origin", type=_origin, default=(0.0, 0.0), help="belt X,Y mm of the board's corner")
    plane.add_argument("--markers", type=Path, help="CSV id,x_mm,y_mm of ArUco marker centres (with --image)")
    plane.add_argument("--dictionary", default="DICT_4X4_50", help="ArUco dictionary of the markers")

    speed = steps.add_parser("speed", help="belt speed from a clip of the running belt, or an encoder")
    add_config(speed)
    speed.add_argument("--camera", choices=["c1", "c2"], default="c1")
    speed.add_argument("--clip", help=CLIP_HELP)
    speed.add_argument("--fps", type=positive, help="frame rate of an image folder")
    speed.add_argument("--encoder-pulses-per-mm", type=positive, help="use a belt encoder instead of a clip")

    offsets = steps.add_parser("offsets", help="C1-to-C2 distance and clock offset from two clips")
    add_config(offsets)
    offsets.add_argument("--c1", default="latest", help=CLIP_HELP)
    offsets.add_argument("--c2", default="latest", help=CLIP_HELP)
    offsets.add_argument("--fps", type=positive, help="frame rate of image folders")
    offsets.add_argument("--distance-mm", type=positive, help="tape-measured C1-to-C2 distance, if known")

    actuators = steps.add_parser("actuators", help="ejector line, nozzles and valve timing")
    add_config(actuators)
    actuators.add_argument("--ejector-x", type=finite, required=True, help="mm downstream of C1's origin")
    actuators.add_argument(
        "--nozzles",
        type=number_type(0, MAX_NOZZLES, integer=True),
        required=True,
        help=f"1..{MAX_NOZZLES}: one command's channel mask",
    )
    actuators.add_argument("--pitch", type=positive, required=True, help="nozzle spacing, mm")
    actuators.add_argument("--first-y", type=finite, required=True, help="y of nozzle 0's centre, mm")
    actuators.add_argument("--latency-ms", type=non_negative, required=True, help="valve latency")
    actuators.add_argument("--min-pulse-ms", type=positive, required=True)

    capture = steps.add_parser("capture", help="take photos from a configured camera (e.g. of the board)")
    add_config(capture)
    capture.add_argument("--camera", choices=["c1", "c2"], required=True)
    capture.add_argument("--out", type=Path, required=True, help="folder for the PNG photos")
    capture.add_argument("--count", type=number_type(0, integer=True), default=1, help="how many photos")
    capture.add_argument("--every", type=non_negative, default=2.0, help="seconds between photos")

    board = steps.add_parser("board", help="write the calibration board to print (PDF or PNG)")
    add_config(board)
    board.add_argument("--board", required=True, help="e.g. charuco:7x5:40:30:DICT_4X4_50, chessboard:9x6:25")
    board.add_argument("--out", type=Path, required=True, help="board.pdf or board.png")
    board.add_argument("--dpi", type=number_type(0, integer=True), default=300)

    restore = steps.add_parser("restore", help="bring back a version the store keeps, as the next version")
    add_config(restore)
    restore.add_argument(
        "--version", type=number_type(0, integer=True), help="which stored version (default: the newest)"
    )

    show = steps.add_parser("show", help="print the calibration and draw the validation pictures")
    add_config(show)
    show.add_argument("--frame", help=f"frame to draw on: {CLIP_HELP} (default: latest)", default="latest")
    show.add_argument("--out", type=Path, help="folder for the pictures (default: the data folder)")


def _board(spec: str) -> Board:
    """The board the step will look for, said in full: a spec without a dictionary means one."""
    board = Board.parse(spec)
    print(f"looking for the board {board.describe()}")
    return board


def _calibration_path(config: SiteConfig) -> Path:
    if config.calibration_file is None:
        raise CalibrationError(
            "calibration_file is not set in the site file: add e.g. `calibration_file: calibration.yaml`"
        )
    return config.calibration_file


def _show(
    session: CalibrationSession, config: SiteConfig, store: FrameStore, args: argparse.Namespace
) -> int:
    current = session.current
    if current.version == 0:
        stored = session.stored_versions()
        if stored:
            raise CalibrationError(
                f"{session.path}: missing, but the store keeps versions up to {stored[-1]}: "
                "`beltcam calibrate restore` brings the newest back"
            )
        raise CalibrationError(f"{session.path}: no calibration yet: run the `beltcam calibrate` steps first")
    print(f"{session.path} (version {current.version})")
    print(yaml.safe_dump(current.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False))
    out = args.out or config.storage.data_dir
    out.mkdir(parents=True, exist_ok=True)
    one_file = args.frame != "latest" and not args.frame.isdigit()
    if one_file:
        print(f"--frame {args.frame} is drawn on for every camera: check it is each camera's own photo")
    for camera in config.cameras:
        if current.camera(camera.id).belt_plane is None:
            print(f"{camera.id}: no belt plane, no picture")
            continue
        try:
            clip = load_clip(args.frame, camera.id, store, fps=1.0, max_frames=1)
            frame, shown = clip.frames[0], f"first frame of {clip.description}"
        except CalibrationError as reason:
            print(f"{camera.id}: no frame to draw on ({reason}); drawing on a blank image")
            width, height = camera.resolution
            frame, shown = np.full((height, width, 3), 96, np.uint8), "blank image"
        undistort = session.undistorter(camera.id)
        # the ejector line and nozzles are calibrated in C1's belt coordinates: only C1's picture has them
        nozzles = "" if camera.id == "c1" else "; nozzles and ejector line: see C1's picture"
        picture = draw_validation(
            undistort(frame) if undistort else frame,
            session.plane(camera.id),
            current.actuators if camera.id == "c1" else None,
            caption=f"{camera.id}, calibration v{current.version}, {shown}{nozzles}",
        )
        path = out / f"calibration_check_{camera.id}.png"
        cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        print(f"{camera.id}: validation picture {path}")
    return 0


def run(config: SiteConfig | None, args: argparse.Namespace) -> int:
    """`config` is None only for `board`, which needs no site."""
    step = args.calibrate_command
    if step == "board":  # printing the board and taking photos need no calibration file yet
        board = Board.parse(args.board)
        written = write_board(board, args.out, args.dpi)
        print(f"{written}: {board.describe()} at {args.dpi} dpi; print at 100 % (no fit-to-page)")
        return 0
    if step == "capture":
        for photo in capture_board_images(config, args.camera, args.count, args.every, args.out):
            print(f"{args.camera}: {photo}")
        return 0
    store = open_store(config)
    session = CalibrationSession(
        _calibration_path(config), store, config.storage.data_dir / "cache", site=config.site_name
    )
    if step == "show":
        return _show(session, config, store, args)
    if step == "restore":
        restored = session.restore(args.version)
        was = restored.history[-2].version  # the restored content's own last version
        print(f"{session.path}: version {was} restored, saved as version {restored.version}")
        return 0
    if step == "intrinsics":
        board = _board(args.board)
        folder = args.folder
        if args.capture:
            folder = (
                folder
                or config.storage.data_dir
                / "calibration_images"
                / args.camera
                / utc_now().strftime("%Y%m%dT%H%M%S")
            )
            capture_board_images(config, args.camera, args.capture, args.every, folder)
            print(f"captured {args.capture} images into {folder}")
        elif folder is None:
            raise CalibrationError("give a folder of board images or --capture N")
        section = session.intrinsics(args.camera, folder, board, args.max_rms)
        print(
            f"{args.camera} intrinsics: fx {section.camera_matrix[0][0]:.1f} px, "
            f"fy {section.camera_matrix[1][1]:.1f} px, RMS {section.rms_px:.3f} px over "
            f"{len(section.per_image_rms_px)} images"
        )
        for name, reason in section.rejected.items():
            print(f"  not used: {name}: {reason}")
    elif step == "plane":
        if args.image is not None and args.markers is not None:
            plane = session.plane_from_markers(args.camera, args.image, args.dictionary, args.markers)
        elif args.image is not None:
            if not args.board:
                raise CalibrationError("--image needs --board (a ChArUco board) or --markers (ArUco markers)")
            plane = session.plane_from_board(args.camera, args.image, _board(args.board), args.origin)
        else:
            plane = session.plane_from_points(args.camera, args.points)
        print(
            f"{args.camera} belt plane ({plane.method}): fit RMS {plane.fit_rms_mm:.2f} mm, held-out "
            f"RMS {plane.holdout_rms_mm:.2f} mm (max {plane.holdout_max_mm:.2f} mm, "
            f"{plane.holdout_points} points)"
        )
    elif step == "speed":
        if args.encoder_pulses_per_mm is not None:
            belt = session.encoder(args.encoder_pulses_per_mm)
            print(f"belt encoder: {args.encoder_pulses_per_mm:g} pulses per mm")
            if belt.speed_mm_s is None:
                print(
                    "the live path cannot read the encoder: also run `beltcam calibrate speed` on a clip of "
                    "the running belt before `beltcam run` (docs/calibration.md)"
                )
            else:
                print(f"the live path keeps the {belt.speed_source}'s belt speed, {belt.speed_mm_s:.1f} mm/s")
        else:
            session.plane(args.camera)  # fail before reading a long clip
            clip = load_clip(args.clip or "latest", args.camera, store, args.fps)
            belt = session.speed(args.camera, clip)
            across = belt.cross_speed_mm_s
            print(
                f"belt speed {belt.speed_mm_s:.1f} mm/s (median {belt.speed_median_mm_s:.1f}, spread "
                f"{belt.speed_spread_mm_s:.1f} mm/s over {belt.frame_pairs} frame pairs of "
                f"{clip.description})"
                + (f"; across the belt {across:+.1f} mm/s" if across is not None else "")
            )
            if belt.bridged_gaps:
                print(
                    f"{belt.bridged_gaps} gaps of lost frames bridged, not measured: the recorder dropped "
                    "frames (`beltcam cameras` shows each camera's drops)"
                )
    elif step == "offsets":
        session.plane("c1"), session.plane("c2")  # fail before reading long clips
        c1 = load_clip(args.c1, "c1", store, args.fps)
        c2 = load_clip(args.c2, "c2", store, args.fps)
        offsets = session.offsets(c1, c2, args.distance_mm)
        print(
            f"C2 is {offsets.c1_to_c2_mm:.0f} mm downstream of C1; C2 clock - C1 clock = "
            f"{offsets.c2_clock_offset_ms:.1f} ms (from {offsets.clock_source}; match scores: speed "
            f"{offsets.speed_correlation:.2f}, objects {offsets.object_correlation:.2f})"
        )
    elif step == "actuators":
        try:
            geometry = ActuatorGeometry(
                ejector_line_x_mm=args.ejector_x, nozzle_count=args.nozzles, nozzle_pitch_mm=args.pitch,
                first_nozzle_y_mm=args.first_y, valve_latency_ms=args.latency_ms,
                min_pulse_ms=args.min_pulse_ms,
            )  # fmt: skip
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "actuators"
            raise CalibrationError(f"actuators: {field}: {first['msg']}") from None
        session.actuators(geometry)
        print(
            f"actuators: {geometry.nozzle_count} nozzles every {geometry.nozzle_pitch_mm:g} mm at x = "
            f"{geometry.ejector_line_x_mm:g} mm, latency {geometry.valve_latency_ms:g} ms"
        )
    print(f"saved {session.path} (version {session.current.version})")
    return 0
