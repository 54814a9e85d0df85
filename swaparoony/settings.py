"""Configuration read once from SWAPAROONY_* environment variables into a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from .cpu_budget import default_api_workers
from .errors import SettingsError
from .models.gpu_budget import default_model_workers
from .models.scrfd import DETECTORS

MIB = 1024 * 1024
DEFAULT_MODELS_DIR = Path("models")
CREDENTIALS_MODES = ("on", "xmp", "off")
LABEL_ON = "AI-generated"


@dataclass(frozen=True)
class Settings:
    """Everything an operator can tune; see the README's table of variables."""

    models_dir: Path | None = None
    """None: not pinned by the operator, so the service looks in the Bento's models, then ./models."""
    destinations_dir: Path = Path("destinations")
    gallery_poll_s: float = 2.0
    """How often the destinations directory is checked for added, replaced or removed files; 0: never."""
    providers: tuple[str, ...] | None = None
    detector: str = "det_10g"
    """Which SCRFD detector (a name in DETECTORS); the recognizer is always w600k_r50."""
    rebatch: Literal["auto", "on", "off"] = "auto"
    """Give batch-1 models a checked free-batch copy: auto does on CUDA only."""
    max_upload_bytes: int = 20 * MIB
    max_pixels: int = 40_000_000
    detection_threshold: float = 0.5
    jpeg_quality: int = 90
    max_batch_size: int = 32
    max_latency_ms: int = 60_000
    api_workers: int = 1
    """from_env's default is cpu_budget.default_api_workers(): what the node's CPUs allow."""
    model_workers: int = 1
    """Processes of the model service, each pinned to its own GPU; from_env's default: one per visible GPU."""
    request_timeout_s: int = 290
    decode_processes: int = 2
    decode_timeout_s: float = 5.0
    decode_memory_mib: int | None = None
    """None: derived from max_pixels (see decode_memory_bytes)."""
    max_active_requests: int = 16
    """Requests one API worker works on at once (their bodies received); the rest wait."""
    max_queued_requests: int = 256
    max_receiving_requests: int = 32
    """Bodies one API worker receives at once, apart from the requests it works on: a slow upload holds one of these,
    never a working slot. Bodies in memory per worker: at most this plus max_active_requests."""
    body_timeout_s: float = 20.0
    """Seconds a body may take before the minimum rate applies: it must then have arrived at min_body_rate on average
    (Apache's mod_reqtimeout rule); past it, 408."""
    min_body_rate: int = 16 * 1024
    """Bytes per second a body must keep up, on average, once body_timeout_s has passed."""
    header_timeout_s: float = 10.0
    """Seconds a connection may take to send a request's line and headers; past it, 408 and the connection closed."""
    max_request_line_bytes: int = 8 * 1024
    """The request line (method, target, version); longer: 414."""
    max_header_line_bytes: int = 16 * 1024
    """One header line; longer: 431."""
    max_headers: int = 100
    """Header lines in a request; more: 431."""
    max_header_bytes: int = 64 * 1024
    """The request line and all headers together; more: 431."""
    max_connections: int = 4096
    """Open client connections per worker; past it a new connection is closed at once."""
    max_swaps_per_request: int = 512
    """Model swaps one request may ask for: faces x destinations x tiles (1, 4 or 16 per face for pixel_boost 128, 256,
    512). 512 fits 8 portraits x 4 faces at pixel_boost 512, the largest booth request; past it, 422."""
    max_active_swaps: int = 1024
    """Swaps one API worker has in flight to the model service at once; a request waits for its share (work, not
    requests, is admitted)."""
    max_destinations: int = 100
    """Portraits the gallery holds; past it an operator's PUT is refused (409) and the loader skips the rest."""
    max_gallery_pixels: int = 300_000_000
    """Decoded pixels of all portraits together (3 bytes each in memory, with their crops and prepared JPEGs on top);
    every frame of a clip counts."""
    max_clip_frames: int = 120
    """Frames one gallery clip (GIF, animated WebP, MP4, WebM) may have; a longer one is skipped with the reason."""
    max_clip_seconds: float = 10.0
    max_clip_frame_pixels: int = 1280 * 720
    """Pixels of one clip frame: each frame stays decoded, with its faces' crops at every pixel-boost size."""
    task_result_s: float = 600.0
    """How long a finished task's result is kept (in memory, never on disk) for GET .../get; then it is gone."""
    task_deadline_s: float = 600.0
    """A task still running this long after it started is cancelled and failed with the reason."""
    max_tasks: int = 32
    """Tasks one API worker holds, running or with answers not yet dropped; past it a submit answers 429."""
    cors_origins: tuple[str, ...] = ()
    api_token: str | None = None
    admin_token: str | None = None
    """Opens PUT and DELETE /destinations/{name} to whoever sends it; None: those routes answer 403."""
    max_form_field_bytes: int = 64 * 1024
    """A text form field (a face id, destination names, a format) is never near this."""
    max_form_parts: int = 16
    """Parts of one multipart body; Swagger UI sends each text field as a part of its own."""
    content_credentials: Literal["on", "xmp", "off"] = "on"
    """on: a signed C2PA manifest and IPTC XMP in every picture; xmp: the XMP only; off: neither."""
    signing_cert: Path | None = None
    signing_key: Path | None = None
    """Both or neither; neither: a local CA and certificate made once in state_dir."""
    state_dir: Path = Path.home() / ".local" / "state" / "swaparoony"
    visible_label: str | None = None
    """Text drawn in a corner of every swapped picture; None: no visible label."""
    watermark: Literal["on", "off"] = "on"
    """on: every swapped picture carries an imperceptible watermark that outlives a re-save (provenance/watermark.py)."""
    watermark_operator: int = 0
    """The operator's identifier (0-255) the watermark carries beside the service mark."""

    @property
    def model_choices(self) -> dict[str, str | None]:
        """The model file chosen per role where it is not the family's default; None: the role is off."""
        return {"detector": self.detector, **({} if self.watermark == "on" else {"watermark": None})}

    @property
    def decode_memory_bytes(self) -> int:
        """Address space of one decode process: 256 MiB for the interpreter and codecs, 12 bytes per allowed pixel.

        Measured peaks (address space): 116 MiB for the idle worker; 574 MiB for a 40 MP lossless WebP (libwebp's two
        canvases and its frame, 12 bytes a pixel); 438 MiB for a 40 MP RGBA PNG at full size, 429 MiB as an upload. A
        decode past this fails alone, as too costly.
        """
        if self.decode_memory_mib is not None:
            return self.decode_memory_mib * MIB
        return 256 * MIB + 12 * self.max_pixels

    @property
    def max_body_bytes(self) -> int:
        """A multipart body: the upload plus its text fields and part headers."""
        return self.max_upload_bytes + self.max_form_parts * self.max_form_field_bytes

    @property
    def max_json_body_bytes(self) -> int:
        """A JSON body that carries the upload in base64, 4 bytes for every 3."""
        return -(-self.max_upload_bytes * 4 // 3) + self.max_form_field_bytes

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment, naming the variable in any error."""
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            models_dir=Path(env["SWAPAROONY_MODELS_DIR"]) if env.get("SWAPAROONY_MODELS_DIR") else None,
            destinations_dir=Path(env.get("SWAPAROONY_DESTINATIONS_DIR", defaults.destinations_dir)),
            gallery_poll_s=_poll(env, "SWAPAROONY_GALLERY_POLL_S", defaults.gallery_poll_s),
            providers=_names(env, "SWAPAROONY_PROVIDERS") or None,
            detector=_choice(env, "SWAPAROONY_DETECTOR", defaults.detector, tuple(DETECTORS)),
            rebatch=_choice(env, "SWAPAROONY_REBATCH", defaults.rebatch, ("auto", "on", "off")),
            max_upload_bytes=_positive_int(env, "SWAPAROONY_MAX_UPLOAD_BYTES", defaults.max_upload_bytes),
            max_pixels=_positive_int(env, "SWAPAROONY_MAX_PIXELS", defaults.max_pixels),
            detection_threshold=_fraction(env, "SWAPAROONY_DETECTION_THRESHOLD", defaults.detection_threshold),
            jpeg_quality=_bounded_int(env, "SWAPAROONY_JPEG_QUALITY", defaults.jpeg_quality, 1, 100),
            max_batch_size=_positive_int(env, "SWAPAROONY_MAX_BATCH_SIZE", defaults.max_batch_size),
            max_latency_ms=_positive_int(env, "SWAPAROONY_MAX_LATENCY_MS", defaults.max_latency_ms),
            api_workers=_bounded_int(env, "SWAPAROONY_API_WORKERS", default_api_workers(), 1, 64),
            model_workers=_bounded_int(env, "SWAPAROONY_MODEL_WORKERS", _gpu_workers(env), 1, 64),
            request_timeout_s=_bounded_int(env, "SWAPAROONY_REQUEST_TIMEOUT_S", defaults.request_timeout_s, 1, 3600),
            decode_processes=_bounded_int(env, "SWAPAROONY_DECODE_PROCESSES", defaults.decode_processes, 1, 64),
            decode_timeout_s=_bounded_float(env, "SWAPAROONY_DECODE_TIMEOUT_S", defaults.decode_timeout_s, 0.1, 300.0),
            decode_memory_mib=_optional_int(env, "SWAPAROONY_DECODE_MEMORY_MIB", 128, 1 << 20),
            max_active_requests=_bounded_int(env, "SWAPAROONY_MAX_ACTIVE_REQUESTS", defaults.max_active_requests, 1, 4096),
            max_queued_requests=_bounded_int(env, "SWAPAROONY_MAX_QUEUED_REQUESTS", defaults.max_queued_requests, 0, 65536),
            max_receiving_requests=_bounded_int(env, "SWAPAROONY_MAX_RECEIVING_REQUESTS", defaults.max_receiving_requests,
                                                1, 4096),
            body_timeout_s=_bounded_float(env, "SWAPAROONY_BODY_TIMEOUT_S", defaults.body_timeout_s, 0.1, 3600.0),
            min_body_rate=_bounded_int(env, "SWAPAROONY_MIN_BODY_RATE", defaults.min_body_rate, 1, 2**40),
            header_timeout_s=_bounded_float(env, "SWAPAROONY_HEADER_TIMEOUT_S", defaults.header_timeout_s, 0.1, 3600.0),
            max_request_line_bytes=_bounded_int(env, "SWAPAROONY_MAX_REQUEST_LINE_BYTES", defaults.max_request_line_bytes,
                                                256, 1 << 20),
            max_header_line_bytes=_bounded_int(env, "SWAPAROONY_MAX_HEADER_LINE_BYTES", defaults.max_header_line_bytes,
                                               256, 1 << 20),
            max_headers=_bounded_int(env, "SWAPAROONY_MAX_HEADERS", defaults.max_headers, 8, 10_000),
            max_header_bytes=_bounded_int(env, "SWAPAROONY_MAX_HEADER_BYTES", defaults.max_header_bytes, 1024, 16 << 20),
            max_connections=_bounded_int(env, "SWAPAROONY_MAX_CONNECTIONS", defaults.max_connections, 16, 1 << 20),
            max_swaps_per_request=_bounded_int(env, "SWAPAROONY_MAX_SWAPS_PER_REQUEST", defaults.max_swaps_per_request,
                                               1, 1 << 20),
            max_active_swaps=_bounded_int(env, "SWAPAROONY_MAX_ACTIVE_SWAPS", defaults.max_active_swaps, 1, 1 << 24),
            max_destinations=_bounded_int(env, "SWAPAROONY_MAX_DESTINATIONS", defaults.max_destinations, 1, 100_000),
            max_gallery_pixels=_positive_int(env, "SWAPAROONY_MAX_GALLERY_PIXELS", defaults.max_gallery_pixels),
            max_clip_frames=_bounded_int(env, "SWAPAROONY_MAX_CLIP_FRAMES", defaults.max_clip_frames, 1, 100_000),
            max_clip_seconds=_bounded_float(env, "SWAPAROONY_MAX_CLIP_SECONDS", defaults.max_clip_seconds, 0.1, 3600.0),
            max_clip_frame_pixels=_positive_int(env, "SWAPAROONY_MAX_CLIP_FRAME_PIXELS", defaults.max_clip_frame_pixels),
            task_result_s=_bounded_float(env, "SWAPAROONY_TASK_RESULT_S", defaults.task_result_s, 1.0, 86_400.0),
            task_deadline_s=_bounded_float(env, "SWAPAROONY_TASK_DEADLINE_S", defaults.task_deadline_s, 1.0, 86_400.0),
            max_tasks=_bounded_int(env, "SWAPAROONY_MAX_TASKS", defaults.max_tasks, 1, 100_000),
            cors_origins=_names(env, "SWAPAROONY_CORS_ORIGINS"),
            api_token=env.get("SWAPAROONY_API_TOKEN") or None,
            admin_token=_secret(env, "SWAPAROONY_ADMIN_TOKEN", env.get("SWAPAROONY_API_TOKEN")),
            content_credentials=_choice(env, "SWAPAROONY_CONTENT_CREDENTIALS", defaults.content_credentials, CREDENTIALS_MODES),
            **_signing_files(env),
            state_dir=Path(env["SWAPAROONY_STATE_DIR"]) if env.get("SWAPAROONY_STATE_DIR") else _default_state_dir(env),
            visible_label=_label(env, "SWAPAROONY_VISIBLE_LABEL"),
            watermark=_choice(env, "SWAPAROONY_WATERMARK", defaults.watermark, ("on", "off")),
            watermark_operator=_bounded_int(env, "SWAPAROONY_WATERMARK_OPERATOR", defaults.watermark_operator, 0, 255),
        )


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> Any:
    value = env.get(name, "").strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(allowed)}")
    return value


class _SigningFiles(TypedDict):
    signing_cert: Path | None
    signing_key: Path | None


def _signing_files(env: Mapping[str, str]) -> _SigningFiles:
    """The operator's certificate chain and key: both paths, or neither."""
    cert, key = env.get("SWAPAROONY_SIGNING_CERT", "").strip(), env.get("SWAPAROONY_SIGNING_KEY", "").strip()
    if bool(cert) != bool(key):
        missing = "SWAPAROONY_SIGNING_KEY" if cert else "SWAPAROONY_SIGNING_CERT"
        raise SettingsError(f"{missing} is not set: give both the signing certificate chain and its key, or neither")
    return {"signing_cert": Path(cert) if cert else None, "signing_key": Path(key) if key else None}


def _default_state_dir(env: Mapping[str, str]) -> Path:
    """XDG's state directory, under HOME as the environment gives it (OpenShift sets HOME for its arbitrary user)."""
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "swaparoony"
    return Path(env.get("HOME") or Path.home()) / ".local" / "state" / "swaparoony"


def _label(env: Mapping[str, str], name: str) -> str | None:
    """off/0/empty: none; on/1: "AI-generated"; other printable ASCII text of up to 40 characters: that text."""
    raw = env.get(name, "").strip()
    if raw.lower() in ("", "off", "0", "false", "no"):
        return None
    if raw.lower() in ("on", "1", "true", "yes"):
        return LABEL_ON
    if len(raw) > 40 or not all(" " <= c <= "~" for c in raw):
        raise SettingsError(f"{name} must be on, off, or printable ASCII text of up to 40 characters")
    return raw


def _gpu_workers(env: Mapping[str, str]) -> int:
    """One per visible GPU unless the operator chose CPU only; the GPU count is only asked for when CUDA may run."""
    providers = _names(env, "SWAPAROONY_PROVIDERS")
    if providers:
        return default_model_workers(env, "CUDAExecutionProvider" in providers)
    import onnxruntime

    return default_model_workers(env, "CUDAExecutionProvider" in onnxruntime.get_available_providers())


def _secret(env: Mapping[str, str], name: str, other: str | None) -> str | None:
    """A token of at least 16 characters that is not the API token (a kiosk holds that one), or None."""
    value = env.get(name, "").strip() or None
    if value is not None and len(value) < 16:
        raise SettingsError(f"{name} must be at least 16 characters (e.g. `openssl rand -hex 24`)")
    if value is not None and value == other:
        raise SettingsError(f"{name} must differ from SWAPAROONY_API_TOKEN: the booth's kiosk holds the API token")
    return value


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _bounded_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} must be between {low} and {high}")
    return value


def _optional_int(env: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    return _bounded_int(env, name, 0, low, high) if env.get(name, "").strip() else None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _bounded_int(env, name, default, 1, 2**62)


def _bounded_float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} must be between {low:g} and {high:g}")
    return value


def _poll(env: Mapping[str, str], name: str, default: float) -> float:
    """0 (off), or 0.1 s to an hour."""
    value = _bounded_float(env, name, default, 0.0, 3600.0)
    if 0 < value < 0.1:
        raise SettingsError(f"{name}={value} must be 0 (off) or at least 0.1 seconds")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _bounded_float(env, name, default, 0.0, 1.0)
    if value in (0.0, 1.0):
        raise SettingsError(f"{name}={value} must be between 0 and 1")
    return value
