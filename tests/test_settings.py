"""Configuration from the environment: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from swaparoony.settings import Settings, SettingsError


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
])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
