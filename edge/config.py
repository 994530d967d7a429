"""The site file `beltcam.yaml`, validated by pydantic.

A technician edits this file by hand, so every mistake must come back as one line naming the file,
the field path and the reason, and relative paths must mean "next to this file" wherever the agent
is started from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.cron import CronTrigger
from limits import parse as parse_rate_limit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainer.variants import VARIANTS

CameraId = Literal["c1", "c2"]
FrameLabel = Literal["before", "after", "unlabeled"]
DEFAULT_CONFIG_PATH = Path("beltcam.yaml")


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s]+@")
_QUERY_SECRETS = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|secret|token|key)=)[^&;\s'\"]*", re.IGNORECASE
)


def redact_credentials(text: str) -> str:
    """Passwords inside URLs (`rtsp://user:pass@host`, `postgresql://user:pass@host/db`,
    `...?password=...`) as `***`: what is printed, logged or stored never carries a secret."""
    return _QUERY_SECRETS.sub(r"\g<key>***", _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text))


class ConfigError(ValueError):
    """A site file that cannot be used; the message is meant to be shown to a technician as is."""


class _Strict(BaseModel):
    """Unknown keys are typos in a hand-written file, so they are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


REALSENSE_ONLY = ("exposure_us", "white_balance_k", "depth", "timestamps")


class CameraConfig(_Strict):
    id: CameraId
    kind: Literal["simulated", "opencv", "realsense", "gstreamer"]
    source: str = Field(
        default="",
        description="opencv: device index, URL or video file; realsense: serial number (empty: the only "
        "one connected) or a recording (.db3, .bag); gstreamer: a pipeline; simulated: unused",
    )
    resolution: tuple[int, int] = Field(default=(640, 480), description="width, height in pixels")
    fps: float = Field(default=10.0, gt=0, le=240)
    exposure_us: float | None = Field(
        default=None, gt=0, description="fixed exposure (auto-exposure drifting between C1 and C2 is a bias)"
    )
    white_balance_k: float | None = Field(default=None, gt=0, description="fixed white balance in kelvin")
    depth: bool = Field(default=False, description="realsense: also deliver depth aligned to colour")
    timestamps: Literal["global", "hardware"] = Field(
        default="global",
        description="realsense: 'global' has the SDK map the device clock onto the host clock (drift "
        "corrected); 'hardware' keeps the raw device clock and beltcam maps it",
    )
    loop: bool = Field(default=False, description="opencv video file or image folder: start again at the end")
    rtsp_transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="opencv RTSP: tcp survives lossy networks and firewalls; udp is leaner"
    )

    @field_validator("resolution")
    @classmethod
    def _positive_resolution(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 16 or max(value) > 8192:
            raise ValueError("each of width and height must be between 16 and 8192 pixels")
        return value

    @model_validator(mode="after")
    def _realsense_only_settings(self) -> CameraConfig:
        """A lock that is silently not applied would let C1 and C2 drift apart unnoticed."""
        if self.kind != "realsense":
            asked = [name for name in REALSENSE_ONLY if name in self.model_fields_set]
            if asked:
                raise ValueError(
                    f"{', '.join(asked)}: only realsense cameras apply this (kind is {self.kind}); "
                    "set exposure and white balance in the camera itself"
                )
        return self


class RetentionConfig(_Strict):
    keep_masked: bool = Field(default=True, description="never evict frames with ground-truth masks")
    keep_live_model_data: bool = Field(
        default=True, description="never evict recordings the live model was trained on"
    )
    low_watermark: float = Field(
        default=0.9, gt=0.1, le=1.0, description="evict down to this fraction of the quota"
    )


class StorageConfig(_Strict):
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="any SQLAlchemy URL; default: SQLite file beltcam.db in data_dir"
    )
    image_format: Literal["jpg", "png"] = "jpg"
    jpeg_quality: int = Field(default=90, ge=10, le=100)
    disk_quota_mb: float | None = Field(default=None, gt=0)
    min_free_mb: float = Field(
        default=500.0,
        ge=0,
        description="free space kept on the data directory's disk: below it the oldest evictable frames "
        "go, and recording pauses (with an alarm) when nothing is evictable",
    )
    retention: RetentionConfig = RetentionConfig()

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'beltcam.db'}"

    def shown_database_url(self) -> str:
        """The URL as it may be printed: without its password."""
        return redact_credentials(self.resolved_database_url())


class RecorderConfig(_Strict):
    queue_size: int = Field(default=64, ge=1, description="frames waiting to be written before drops")
    segment_s: float = Field(default=300.0, gt=0, description="a new recording starts after this long")
    pair_tolerance_ms: float = Field(default=50.0, gt=0)
    stall_timeout_s: float = Field(default=2.0, gt=0)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)
    commit_every_s: float = Field(default=0.5, gt=0)
    encoder_threads: int = Field(default=2, ge=1, le=32, description="JPEG/PNG encoding in parallel")


class SimulatedFault(_Strict):
    """A scripted failure of one simulated camera, for commissioning drills and tests."""

    camera: CameraId
    at_s: float = Field(ge=0, description="simulation time at which the fault starts")
    kind: Literal["error", "stall", "frozen", "black"]
    duration_s: float = Field(default=1.0, gt=0)


class SimulatedBoard(_Strict):
    """A calibration board lying on the (stopped) belt under some cameras, as a technician lays one
    for `beltcam calibrate plane`; remove the section again before measuring speed and offsets."""

    board: str = Field(description="board spec as the calibrate steps take it: charuco:6x4:60:45:DICT_4X4_50")
    origin_mm: tuple[float, float] = Field(
        default=(100.0, 120.0), description="the board's first square corner in the camera's belt mm"
    )
    cameras: list[CameraId] = ["c1", "c2"]
    held: bool = Field(
        default=False,
        description="held up at tilted poses in front of the camera (a new one every hold_s), as for "
        "`beltcam calibrate intrinsics`, instead of lying on the belt",
    )
    hold_s: float = Field(default=1.0, gt=0)

    @field_validator("board")
    @classmethod
    def _parses(cls, value: str) -> str:
        from calibration import Board, CalibrationError

        try:
            Board.parse(value)
        except CalibrationError as error:
            raise ValueError(str(error)) from None
        return value


class SimulatedEjector(_Strict):
    """The simulated belt's nozzle bank, written into its calibration as `actuators` (belt mm in C1's
    coordinates; the default covers a 600 mm belt, 400 mm downstream of C1's 800 mm view)."""

    line_x_mm: float = Field(default=1200.0, gt=0)
    nozzle_count: int = Field(default=24, ge=1, le=64)
    pitch_mm: float = Field(default=25.0, gt=0)
    first_nozzle_y_mm: float = 12.5
    valve_latency_ms: float = Field(default=12.0, ge=0)
    min_pulse_ms: float = Field(default=8.0, gt=0)


class SimulatorConfig(_Strict):
    seed: int = 0
    belt_width_mm: float = Field(default=600.0, gt=0)
    belt_speed_mm_s: float = Field(default=250.0, gt=0)
    speed_jitter: float = Field(default=0.02, ge=0, lt=0.5, description="relative speed wobble")
    c1_to_c2_mm: float = Field(default=3000.0, gt=0)
    c2_clock_offset_ms: float = Field(default=0.0, description="C2's clock minus C1's clock")
    objects_per_m: float = Field(default=4.0, ge=0)
    illegal_fraction: float = Field(default=0.5, ge=0, le=1)
    missed_illegal_rate: float = Field(default=0.05, ge=0, le=1)
    object_size_mm: tuple[float, float] = (60.0, 180.0)
    classes_differ_by: Literal["colour", "shape"] = Field(
        default="colour",
        description="'colour': each class its own materials; 'shape': one palette for both, classes told "
        "apart only by shape, surface and transparency (as clear PVC trays among clear PET bottles)",
    )
    touching_fraction: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="share of objects dropped against the previous one (touching or overlapping)",
    )
    cameras_alike: bool = Field(
        default=False, description="C2 sees the belt with C1's colour, texture, white balance and lamps"
    )
    noise_sigma: float = Field(default=2.0, ge=0)
    lighting_drift: float = Field(default=0.08, ge=0, lt=1)
    lamp_flicker: float = Field(
        default=0.0, ge=0, lt=0.5, description="lamp brightness swing between frames, rolling-shutter bands"
    )
    truth_every: int = Field(
        default=0, ge=0, description="store ground truth masks for every Nth C1 frame (0: never)"
    )
    truth_segments_every: int = Field(
        default=1, ge=1, description="only every Nth C1 recording segment gets masks (evaluation sets)"
    )
    realtime: bool = Field(default=True, description="pace frames at the camera fps")
    faults: list[SimulatedFault] = []
    board: SimulatedBoard | None = None
    ejector: SimulatedEjector = SimulatedEjector()


class ModelConfig(_Strict):
    backbone: Literal["resnet18", "resnet34", "resnet50"] = "resnet50"
    image_size: int = Field(default=256, ge=32)
    pretrained_weights: Literal["imagenet", "random"] | Path = Field(
        default="imagenet",
        description="'imagenet' (torchvision's checkpoint in the torch hub cache), a local .pth, or "
        "'random'; weights asked for and not found stop training",
    )


class LiveConfig(_Strict):
    """The live path: masks of C1 frames, belt tracks, removal commands (docs/live.md)."""

    fusion: Literal["none", "belt", "flow"] = Field(
        default="belt",
        description="fuse the previous frame's maps, moved by the calibrated belt motion or optical flow",
    )
    fusion_frames: int = Field(
        default=1, ge=1, le=10, description="previous frames fused with each frame (within 0.5 s of it)"
    )
    engine: Literal["onnxruntime", "tensorrt"] = Field(
        default="onnxruntime",
        description="what runs the model: ONNX Runtime with `providers`, or a native TensorRT engine with "
        "pycuda buffers (Jetson; the `jetson` extra)",
    )
    providers: list[Literal["tensorrt", "cuda", "cpu"]] = Field(
        default=["tensorrt", "cuda", "cpu"], description="ONNX Runtime providers, in order, where present"
    )
    threads: int = Field(
        default=0,
        ge=0,
        description="CPU threads ONNX Runtime may use for a frame (0: one per core); fewer leave cores to "
        "the recorder and the nightly training on a small box",
    )
    min_area_mm2: float = Field(default=1500.0, ge=0, description="smaller patches of foreground are ignored")
    min_width_mm: float = Field(
        default=0.0, ge=0, description="patches thinner than this (streaks, seams) are ignored; 0: none"
    )
    merge_gap_mm: float = Field(default=10.0, ge=0, description="patches closer than this are one object")
    split_classes: bool = Field(
        default=True,
        description="a patch with an illegal and a legal region each of min_area_mm2 is two touching objects",
    )
    belt_speed: Literal["measured", "calibrated"] = Field(
        default="measured",
        description="predict and time removals by the belt speed the tracked objects show (the median of the "
        "last 2 s), or by the calibrated figure alone",
    )
    outline_band_mm: float = Field(
        default=5.0,
        ge=0,
        description="objects are reported sliced into bands this wide across the belt (0: as boxes only)",
    )
    illegal_share: float = Field(
        default=0.5, gt=0, le=1, description="an object is illegal when, on average, this share of it is"
    )
    min_hits: int = Field(default=2, ge=1, description="frames an object is seen in before it is removed")
    max_missed: int = Field(default=3, ge=0, description="frames a track survives without being seen")
    gate_mm: float = Field(default=80.0, gt=0, description="farthest a track may be from its prediction")
    background_frames: int = Field(default=31, ge=3, description="frames in C1's running median background")
    background_every: int = Field(default=5, ge=1, description="every Nth frame joins the median")
    model_check_s: float = Field(default=2.0, gt=0, description="how often the registry's live model is read")
    dispatch_ms: float = Field(default=5.0, gt=0, description="how often due commands are released")
    stop_drain_s: float = Field(
        default=3.0, ge=0, description="after a stop, commands already planned are still sent this long"
    )


class GateConfig(_Strict):
    """What a nightly candidate must show before it replaces the live model (docs/nightly.md)."""

    margin: float = Field(
        default=1.0,
        allow_inf_nan=False,
        description="points (mIoU, or object AUC x 100) a candidate may be below the live model",
    )
    min_mask_agreement: float = Field(
        default=0.999, gt=0, le=1, description="share of pixels whose ONNX and PyTorch masks agree"
    )
    max_latency_ms: float | None = Field(
        default=None, gt=0, description="per-frame inference on this device (default: C1's frame period)"
    )
    max_memory_mb: float = Field(default=2048.0, gt=0, description="memory the model's session may add")


NightlyMethod = Literal[VARIANTS]  # the paper's methods and issue 18's switchable changes


class ScheduleConfig(_Strict):
    """The nightly loop: when it trains, on what, and how its candidates are judged."""

    enabled: bool = True
    nightly_cron: str = Field(default="0 2 * * *", description="when training may start, crontab syntax")
    window_h: float = Field(default=4.0, gt=0, le=24, description="hours the training window stays open")
    timezone: str | None = Field(default=None, description="IANA zone of the cron (default: the machine's)")
    min_new_frames: int = Field(
        default=3000, ge=1, description="before/after frames recorded since the last nightly run, to train"
    )
    min_free_gb: float = Field(default=5.0, ge=0, description="no training below this much free disk")
    recent_days: float = Field(default=14.0, gt=0, description="a run learns from this many days of footage")
    method: NightlyMethod = "ours"
    candidates: list[NightlyMethod] = Field(
        default=[],
        description="methods (or their variants, docs/trainer.md) also trained after `method` while the "
        "window has room for another run; each is judged against the model live by then, so the site's "
        "own footage picks the method",
    )
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=8, ge=1)
    samples_per_epoch: int | None = Field(default=4000, ge=1, description="samples drawn per epoch")
    keep_models: int = Field(default=5, ge=1, description="models kept with their files besides the live one")
    nice: int = Field(default=10, ge=0, le=19, description="CPU priority lowered by this for training")
    gate: GateConfig = GateConfig()

    @field_validator("candidates")
    @classmethod
    def _each_candidate_once(cls, value: list[str]) -> list[str]:
        """A method listed twice would train again over its own run in the same night."""
        twice = sorted({method for method in value if value.count(method) > 1})
        if twice:
            raise ValueError(f"listed more than once: {', '.join(twice)}")
        return value

    @field_validator("nightly_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        CronTrigger.from_crontab(value)  # raises ValueError with the reason
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)") from None
        return value


class BridgeConfig(_Strict):
    transport: Literal["simulator", "modbus_tcp", "serial"] = "simulator"
    host: str = "127.0.0.1"
    port: int = Field(default=5020, ge=1, le=65535)
    serial_port: str | None = None
    baudrate: int = Field(default=115_200, gt=0)
    heartbeat_ms: float = Field(default=100.0, gt=0, description="link-loss alarm within one period")
    watchdog_ms: int = Field(default=500, ge=50, le=10_000, description="device closes all valves after this")
    lead_ms: float = Field(default=100.0, gt=0, description="commands are final this long before firing")
    dry_run: bool = False
    spare_legal: bool = Field(
        default=True,
        description="never fire a lane where a legal object would be hit too: far fewer legal objects "
        "lost where objects touch, a few touching illegal ones left (benchmarks/README.md)",
    )
    spare_clearance_mm: float = Field(
        default=5.0,
        ge=0,
        description="with spare_legal, air kept this far along the belt from a legal object: a pulse is "
        "timed from positions a few millimetres off (belt speed wobble, pixels)",
    )

    @model_validator(mode="after")
    def _serial_needs_a_port(self) -> BridgeConfig:
        if self.transport == "serial" and not self.serial_port:
            raise ValueError("transport serial needs serial_port (e.g. /dev/ttyUSB0)")
        return self


class PanelConfig(_Strict):
    """The technician's panel (docs/panel.md). It listens on loopback unless told otherwise: opening it
    to the plant network is a decision, not a default."""

    enabled: bool = Field(default=True, description="the agent serves the panel (`beltcam run`/`demo`)")
    host: str = Field(default="127.0.0.1", description="listen address; 0.0.0.0 for every interface")
    port: int = Field(default=8080, ge=0, le=65535, description="0: any free port (the log says which)")
    threads: int = Field(default=8, ge=2, le=64, description="requests served at once (live views included)")
    public_metrics: bool = Field(default=True, description="/metrics without login, for Prometheus")
    secure_cookies: bool = Field(
        default=False, description="session cookie only over HTTPS: set when a TLS proxy fronts the panel"
    )
    session_hours: float = Field(default=12.0, gt=0, le=720, description="a login lasts this long")
    login_limit: str = Field(default="5 per minute", description="failed-login rate limit per address")
    max_upload_mb: float = Field(default=20.0, gt=0, le=1024)
    live_fps: float = Field(default=8.0, gt=0, le=30, description="live view frames per second per viewer")

    @field_validator("login_limit")
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        try:
            parse_rate_limit(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as '5 per minute' or '20 per hour'") from None
        return value


class SiteConfig(_Strict):
    site_name: str = Field(
        default="beltcam", min_length=1, description="the belt's name on panels and backups"
    )
    cameras: list[CameraConfig]
    storage: StorageConfig = StorageConfig()
    recorder: RecorderConfig = RecorderConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    model: ModelConfig = ModelConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    calibration_file: Path | None = None
    bridge: BridgeConfig = BridgeConfig()
    live: LiveConfig = LiveConfig()
    panel: PanelConfig = PanelConfig()

    @model_validator(mode="after")
    def _one_camera_each(self) -> SiteConfig:
        ids = sorted(camera.id for camera in self.cameras)
        if ids != ["c1", "c2"]:
            raise ValueError(f"exactly one camera c1 and one camera c2 are needed, found {ids or 'none'}")
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        return next(camera for camera in self.cameras if camera.id == camera_id)


def _format_validation_error(path: Path, error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    reason = first["msg"]
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
    elif first["type"] == "value_error":  # our own validators' words, without pydantic's prefix
        reason = str(first["ctx"]["error"])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return redact_credentials(f"{path}: {field}: {reason}{more}")


def _resolve_relative_paths(config: SiteConfig, base: Path) -> SiteConfig:
    def resolve(value: Path | None) -> Path | None:
        if value is None or value.is_absolute():
            return value
        return (base / value).resolve()

    storage = config.storage.model_copy(update={"data_dir": resolve(config.storage.data_dir)})
    database_url = storage.database_url
    if database_url and database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
        relative = database_url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            database_url = f"sqlite:///{resolve(Path(relative))}"
    storage = storage.model_copy(update={"database_url": database_url})
    weights = config.model.pretrained_weights
    model = config.model.model_copy(
        update={"pretrained_weights": resolve(weights) if isinstance(weights, Path) else weights}
    )
    cameras = [
        camera.model_copy(update={"source": str(resolve(Path(camera.source)))})
        if _is_file_source(camera)
        else camera
        for camera in config.cameras
    ]
    return config.model_copy(
        update={
            "storage": storage, "model": model, "cameras": cameras,
            "calibration_file": resolve(config.calibration_file),
        }
    )  # fmt: skip


def _is_file_source(camera: CameraConfig) -> bool:
    """A camera source naming a file or folder (a video, images, a RealSense recording): not a device
    index, URL, pipeline or serial number."""
    source = camera.source
    if camera.kind == "realsense":
        return source.endswith((".bag", ".db3"))
    device_or_stream = source.isdigit() or "://" in source or "!" in source
    return camera.kind == "opencv" and bool(source) and not device_or_stream


def load_config(path: Path | str = DEFAULT_CONFIG_PATH) -> SiteConfig:
    """Read and validate a site file; raises ConfigError with a one-line reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (pass --config FILE)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        config = SiteConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    return _resolve_relative_paths(config, path.resolve().parent)
