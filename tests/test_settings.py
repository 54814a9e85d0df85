"""Configuration from the environment: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swaparoony import cpu_budget
from swaparoony.errors import SettingsError
from swaparoony.settings import Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.models_dir is None and settings.destinations_dir == Path("destinations")
    assert settings.max_upload_bytes == 20 * 1024 * 1024 and settings.max_pixels == 40_000_000
    assert settings.providers is None and settings.cors_origins == ()


def test_values_are_parsed() -> None:
    settings = Settings.from_env({
        "SWAPAROONY_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider",
        "SWAPAROONY_MAX_PIXELS": "1000",
        "SWAPAROONY_CORS_ORIGINS": "https://booth.example,http://localhost:5173",
    })
    assert settings.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert settings.max_pixels == 1000
    assert settings.cors_origins == ("https://booth.example", "http://localhost:5173")


@pytest.mark.parametrize(("name", "value"), [
    ("SWAPAROONY_MAX_UPLOAD_BYTES", "lots"), ("SWAPAROONY_MAX_PIXELS", "0"),
    ("SWAPAROONY_DETECTION_THRESHOLD", "1.5"), ("SWAPAROONY_JPEG_QUALITY", "101"),
    ("SWAPAROONY_CONTENT_CREDENTIALS", "maybe"), ("SWAPAROONY_VISIBLE_LABEL", "KI-generiert, völlig"),
    ("SWAPAROONY_VISIBLE_LABEL", "x" * 41), ("SWAPAROONY_SIGNING_KEY", ""), ("SWAPAROONY_GALLERY_POLL_S", "0.01"),
    ("SWAPAROONY_WATERMARK", "faint"), ("SWAPAROONY_WATERMARK_OPERATOR", "256"), ("SWAPAROONY_WATERMARK_OPERATOR", "-1"),
])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    env = {name: value} if name != "SWAPAROONY_SIGNING_KEY" else {"SWAPAROONY_SIGNING_CERT": "/run/tls.crt"}
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_content_credentials_settings() -> None:
    default = Settings.from_env({"HOME": "/tmp/home"})
    assert default.content_credentials == "on" and default.visible_label is None
    assert default.state_dir == Path("/tmp/home/.local/state/swaparoony")
    assert default.signing_cert is None and default.signing_key is None
    chosen = Settings.from_env({
        "SWAPAROONY_CONTENT_CREDENTIALS": "XMP", "SWAPAROONY_VISIBLE_LABEL": "on", "XDG_STATE_HOME": "/var/lib",
        "SWAPAROONY_SIGNING_CERT": "/run/tls.crt", "SWAPAROONY_SIGNING_KEY": "/run/tls.key",
    })
    assert chosen.content_credentials == "xmp" and chosen.visible_label == "AI-generated"
    assert chosen.state_dir == Path("/var/lib/swaparoony") and chosen.signing_key == Path("/run/tls.key")
    assert Settings.from_env({"SWAPAROONY_VISIBLE_LABEL": "Made with AI"}).visible_label == "Made with AI"
    assert Settings.from_env({"SWAPAROONY_STATE_DIR": "/data"}).state_dir == Path("/data")
    assert default.watermark == "on" and default.watermark_operator == 0 and "watermark" not in default.model_choices
    off = Settings.from_env({"SWAPAROONY_WATERMARK": "OFF", "SWAPAROONY_WATERMARK_OPERATOR": "255"})
    assert off.model_choices["watermark"] is None and off.watermark_operator == 255


@pytest.mark.parametrize(("files", "workers"), [
    ({"cpu.max": "max 100000\n"}, None),  # no quota: half the CPUs the process may run on
    ({"cpu.max": "400000 100000\n"}, 2),  # a 4-CPU pod limit
    ({"cpu.max": "150000 100000\n"}, 1),  # 1.5 CPUs rounds up to 2, half of that is 1
    ({"cpu/cpu.cfs_quota_us": "1600000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 8),  # cgroup v1, 16 CPUs, capped
])
def test_api_workers_default_to_what_the_cpu_quota_allows(tmp_path: Path, files: dict[str, str], workers: int | None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)))
    assert cpu_budget.default_api_workers(tmp_path) == (workers if workers is not None else 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1})
    assert cpu_budget.default_api_workers(tmp_path) == 1
