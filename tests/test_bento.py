"""The Bento: models imported into BentoML's store, built, exported with them, and served as built."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

from conftest import REPO, encode, start_server, stop_server, upload_image
from swaparoony.models.registry import service_files
from test_model_download import write_manifest as write_file_manifest



def run(*argv: str, env: dict[str, str], cwd: Path = REPO) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=480)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.mark.build
def test_build_export_and_serve_the_bento(tmp_path: Path, models_dir: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml_home"), "BENTOML_DO_NOT_TRACK": "True"}
    env.pop("SWAPAROONY_MODELS_DIR", None)
    bentoml = [sys.executable, "-m", "bentoml"]
    imported = run(sys.executable, "-m", "swaparoony", "models", "import", "--from", str(models_dir),
                   "--models-dir", str(tmp_path / "models"), "--manifest", str(write_manifest(tmp_path, models_dir)), env=env)
    assert "saved in the BentoML model store as swaparoony-models:" in imported

    run(*bentoml, "build", str(REPO), env=env)
    archive = tmp_path / "swaparoony.bento"
    run(*bentoml, "export", "swaparoony:latest", str(archive), env=env)
    with tarfile.open(archive) as bento:
        names = [name.removeprefix("./") for name in bento.getnames()]
    for relative in ("buffalo_l/det_10g.onnx", "buffalo_l/w600k_r50.onnx", "inswapper_128.onnx"):
        assert any(n.startswith("models/swaparoony-models/") and n.endswith(relative) for n in names), relative
    assert any(n.endswith("src/destinations/astronaut.png") for n in names)
    # Every module of the service is packed (the server below could fall back on this checkout's editable install,
    # which an image does not have: an exclude of models/ once dropped swaparoony/models/).
    code = [str(path.relative_to(REPO)) for package in ("swaparoony", "http_api") for path in (REPO / package).rglob("*.py")
            if "__pycache__" not in path.parts]
    assert [module for module in code if not any(n.endswith(f"src/{module}") for n in names)] == []
    assert not any("/tests/" in n or ".venv" in n or "openshift/" in n for n in names)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = start_server(tmp_path / "serve", {k: v for k, v in env.items() if not k.startswith("SWAPAROONY_")},
                          target="swaparoony:latest", cwd=elsewhere)
    try:
        response = httpx.post(server.url + "/swap", files={"image": ("me.jpg", encode(upload_image()), "image/jpeg")}, timeout=120)
        assert response.status_code == 200, response.text
        assert response.json()["swapped_images"]
    finally:
        stop_server(server.process)


def write_manifest(tmp_path: Path, models_dir: Path) -> Path:
    """A manifest describing the generated files, so import verifies them as it would the real ones."""
    files = {spec.relative_path: (models_dir / spec.relative_path).read_bytes() for spec in service_files()}
    return write_file_manifest(tmp_path / "manifest.json", files, {spec.relative_path: [] for spec in service_files()})


def test_make_bento_refuses_to_build_without_the_models(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty_home"), "BENTOML_DO_NOT_TRACK": "True"}
    result = subprocess.run(["make", "-s", "bento", f"VENV={venv}"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode != 0
    assert "model store has no swaparoony-models" in result.stderr and "BENTO_WITHOUT_MODELS=1" in result.stderr
    assert not list((tmp_path / "empty_home").rglob("bento.yaml"))  # nothing was built
