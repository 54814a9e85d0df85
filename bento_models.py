"""The model files in BentoML's model store, so a built Bento (and its image) carries them.

The three files are saved as one BentoML model, `swaparoony-models`, laid out like a models
directory. `swaparoony models pull|import` call `save` through the `swaparoony.models_installed`
entry point, which keeps the framework-free core from importing BentoML.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import bentoml
from bentoml.exceptions import NotFound

from swaparoony.models.registry import service_files
from swaparoony.models.specs import licences
from swaparoony.settings import DEFAULT_MODELS_DIR, Settings

MODEL_NAME = "swaparoony-models"
TAG = f"{MODEL_NAME}:latest"


def save(models_dir: Path) -> str:
    """Save the verified files of models_dir (for SWAPAROONY_DETECTOR's set) as a new version of the store
    model; returns a report line."""
    specs = service_files({"detector": Settings.from_env().detector}, models_dir)  # with the optional files present
    with bentoml.models.create(
        MODEL_NAME,
        labels={"licence": "non-commercial-research"},
        metadata={"licence": licences(specs), **{spec.relative_path: spec.sha256 or "unknown" for spec in specs}},
    ) as model:
        for spec in specs:
            target = Path(model.path_of(spec.relative_path))
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(models_dir / spec.relative_path, target)
    return f"saved in the BentoML model store as {model.tag}"


def models_dir(settings: Settings) -> Path:
    """Where the service reads its model files: SWAPAROONY_MODELS_DIR, else the store's copy, else ./models."""
    return settings.models_dir or stored_dir() or DEFAULT_MODELS_DIR


def stored_dir() -> Path | None:
    """The store model's folder (a models directory) when the store has it, else None."""
    try:
        return Path(bentoml.models.get(TAG).path)
    except NotFound:
        return None


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link when the store is on the same file system (no second 550 MB copy), else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
