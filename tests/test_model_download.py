"""`swaparoony models pull|import|verify` against a loopback HTTP server serving generated model files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import REPO
from generated_models import detector_model, enhancer_model

from swaparoony.cli import main
from swaparoony.models.arcface import RECOGNIZER
from swaparoony.models.inswapper import SWAPPER
from swaparoony.models.rivagan import ENCODER as WATERMARK
from swaparoony.models.registry import service_files
from swaparoony.models.scrfd import DETECTOR, DETECTORS


class Mirror(ThreadingHTTPServer):
    """Serves files by path; /cut/ paths drop the first transfer half-way, /missing/ paths are 404."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.files, self.requests, self.cut_done = files, [], set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class MirrorHandler(BaseHTTPRequestHandler):
    server: Mirror

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path.replace("/cut/", "/files/"))
        if body is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path.startswith("/cut/") and self.path not in self.server.cut_done:
            self.server.cut_done.add(self.path)
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body[start:])


@pytest.fixture(scope="module")
def files(models_dir: Path) -> dict[str, bytes]:
    """The generated models as bytes, and a buffalo_l.zip holding the detector and recognizer."""
    content = {spec.relative_path: (models_dir / spec.relative_path).read_bytes() for spec in service_files()}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for spec in (DETECTOR, RECOGNIZER):
            zipped.writestr(Path(spec.relative_path).name, content[spec.relative_path])
        zipped.writestr("genderage.onnx", b"not needed")
    wheel = io.BytesIO()  # the watermark encoder comes out of a Python wheel, as invisible-watermark's is on PyPI
    with zipfile.ZipFile(wheel, "w") as zipped:
        zipped.writestr(f"imwatermark/{WATERMARK.relative_path}", content[WATERMARK.relative_path])
        zipped.writestr("imwatermark/__init__.py", "")
    return {**content, "buffalo_l.zip": archive.getvalue(), "watermark.whl": wheel.getvalue()}


@pytest.fixture()
def mirror(files: dict[str, bytes]) -> Iterator[Mirror]:
    server = Mirror({"/zips/buffalo_l.zip": files["buffalo_l.zip"], "/files/inswapper_128.onnx": files[SWAPPER.relative_path],
                     "/bad/inswapper_128.onnx": files[DETECTOR.relative_path], "/pypi/watermark.whl": files["watermark.whl"]})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def write_manifest(path: Path, files: dict[str, bytes], sources: dict[str, list[dict]]) -> Path:
    entries = [{"path": spec.relative_path, "size": len(files[spec.relative_path]),
                "sha256": hashlib.sha256(files[spec.relative_path]).hexdigest(), "sources": sources[spec.relative_path]}
               for spec in service_files()]
    path.write_text(json.dumps({"files": entries}))
    return path


def standard_sources(url: str, swapper: list[str]) -> dict[str, list[dict]]:
    zips = [{"url": f"{url}/missing/buffalo_l.zip", "member": None}, {"url": f"{url}/zips/buffalo_l.zip"}]
    return {
        DETECTOR.relative_path: [dict(z, member="det_10g.onnx") for z in zips],
        RECOGNIZER.relative_path: [dict(z, member="w600k_r50.onnx") for z in zips],
        SWAPPER.relative_path: [{"url": f"{url}{p}"} for p in swapper],
        WATERMARK.relative_path: [{"url": f"{url}/pypi/watermark.whl", "member": WATERMARK.relative_path}],
    }


def run(*argv: str) -> int:
    """The CLI in-process; BentoML's model store is covered by test_bento.py in a throwaway BENTOML_HOME."""
    return main([*argv, "--no-store"] if argv[1] != "verify" else list(argv))


def test_pull_skips_a_404_mirror_verifies_and_says_the_licence(mirror: Mirror, files: dict, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    manifest = write_manifest(tmp_path / "m.json", files, standard_sources(mirror.url, ["/files/inswapper_128.onnx"]))
    models = tmp_path / "models"
    assert run("models", "pull", "--models-dir", str(models), "--manifest", str(manifest)) == 0
    for spec in service_files():
        assert (models / spec.relative_path).read_bytes() == files[spec.relative_path]
    err = capsys.readouterr().err
    assert "non-commercial research" in err and "HTTP 404" in err and "MiB" in err
    assert not (models / ".partial").exists()
    assert run("models", "verify", "--models-dir", str(models), "--manifest", str(manifest)) == 0

    requests_before = len(mirror.requests)
    assert run("models", "pull", "--models-dir", str(models), "--manifest", str(manifest)) == 0
    assert len(mirror.requests) == requests_before  # verified files are not fetched again
    assert "already verified" in capsys.readouterr().out


def test_pull_resumes_after_a_cut_connection(mirror: Mirror, files: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = write_manifest(tmp_path / "m.json", files, standard_sources(mirror.url, ["/cut/inswapper_128.onnx"]))
    models = tmp_path / "models"
    assert run("models", "pull", "--models-dir", str(models), "--manifest", str(manifest)) == 1
    assert "run pull again to resume" in capsys.readouterr().err
    assert not (models / SWAPPER.relative_path).exists()  # a partial file never takes the final name
    assert run("models", "pull", "--models-dir", str(models), "--manifest", str(manifest)) == 0
    ranges = [r for p, r in mirror.requests if p.startswith("/cut/")]
    assert ranges[0] is None and ranges[-1] == f"bytes={len(files[SWAPPER.relative_path]) // 2}-"
    assert (models / SWAPPER.relative_path).read_bytes() == files[SWAPPER.relative_path]


def test_pull_refuses_a_file_with_the_wrong_hash(mirror: Mirror, files: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = write_manifest(tmp_path / "m.json", files, standard_sources(mirror.url, ["/bad/inswapper_128.onnx"]))
    models = tmp_path / "models"
    assert run("models", "pull", "--models-dir", str(models), "--manifest", str(manifest)) == 1
    err = capsys.readouterr().err
    assert "inswapper_128.onnx" in err and f"{mirror.url}/bad/inswapper_128.onnx" in err
    assert f"expected {len(files[SWAPPER.relative_path]):,}" in err and "refused" in err
    assert not (models / SWAPPER.relative_path).exists()


def pull_in_subprocess(models: Path, manifest: Path, preexec) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swaparoony", "models", "pull", "--models-dir", str(models),
                           "--manifest", str(manifest), "--no-store"], cwd=REPO, capture_output=True, text=True, preexec_fn=preexec,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)


def test_a_full_disk_is_reported(mirror: Mirror, files: dict, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.json", files, standard_sources(mirror.url, ["/files/inswapper_128.onnx"]))

    def small_disk() -> None:  # writes past 64 KiB fail as a full disk would (EFBIG rather than ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    result = pull_in_subprocess(tmp_path / "models", manifest, small_disk)
    assert result.returncode == 1
    assert "cannot write" in result.stderr and "File too large" in result.stderr
    assert not (tmp_path / "models" / DETECTOR.relative_path).exists()


def test_a_models_directory_that_cannot_be_created_is_reported(mirror: Mirror, files: dict, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    manifest = write_manifest(tmp_path / "m.json", files, standard_sources(mirror.url, ["/files/inswapper_128.onnx"]))
    (tmp_path / "a_file").write_text("not a folder")
    assert run("models", "pull", "--models-dir", str(tmp_path / "a_file" / "models"), "--manifest", str(manifest)) == 1
    assert "Not a directory" in capsys.readouterr().err


def test_import_copies_and_verifies_brought_files(files: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    brought = tmp_path / "usb"
    brought.mkdir()
    (brought / "buffalo_l.zip").write_bytes(files["buffalo_l.zip"])
    (brought / "inswapper_128.onnx").write_bytes(files[SWAPPER.relative_path])
    (brought / "invisible_watermark-0.2.0-py3-none-any.whl").write_bytes(files["watermark.whl"])
    manifest = write_manifest(tmp_path / "m.json", files, standard_sources("http://unused", []))
    models = tmp_path / "models"
    assert run("models", "import", "--from", str(brought), "--models-dir", str(models), "--manifest", str(manifest)) == 0
    assert "buffalo_l.zip:det_10g.onnx" in capsys.readouterr().out
    assert all((models / spec.relative_path).read_bytes() == files[spec.relative_path] for spec in service_files())

    (brought / "inswapper_128.onnx").write_bytes(b"truncated")
    (models / SWAPPER.relative_path).unlink()
    assert run("models", "import", "--from", str(brought), "--models-dir", str(models), "--manifest", str(manifest)) == 1
    assert not (models / SWAPPER.relative_path).exists()


def test_verify_says_what_is_wrong_with_each_file(files: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    models = tmp_path / "models"
    (models / "buffalo_l").mkdir(parents=True)
    (models / DETECTOR.relative_path).write_bytes(files[DETECTOR.relative_path])
    (models / RECOGNIZER.relative_path).write_bytes(files[RECOGNIZER.relative_path][:-10])
    wrong = detector_model().SerializeToString()  # right hash for this manifest, wrong contract
    files = {**files, SWAPPER.relative_path: wrong}
    (models / SWAPPER.relative_path).write_bytes(wrong)
    manifest = write_manifest(tmp_path / "m.json", files, standard_sources("http://unused", []))
    assert run("models", "verify", "--models-dir", str(models), "--manifest", str(manifest)) == 1
    out = capsys.readouterr().out
    assert "buffalo_l/det_10g.onnx: OK" in out
    assert "buffalo_l/w600k_r50.onnx: wrong hash" in out
    assert "inswapper_128.onnx: wrong contract" in out
    (models / DETECTOR.relative_path).unlink()
    run("models", "verify", "--models-dir", str(models), "--manifest", str(manifest))
    assert "buffalo_l/det_10g.onnx: missing" in capsys.readouterr().out


def test_a_detector_without_a_known_checksum_is_pulled_and_checked_by_its_contract(
        mirror: Mirror, files: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    det_500m = DETECTORS["det_500m"].relative_path
    buffalo_s = io.BytesIO()
    with zipfile.ZipFile(buffalo_s, "w") as zipped:
        zipped.writestr("det_500m.onnx", files[DETECTOR.relative_path])  # a generated SCRFD in its place
        zipped.writestr("w600k_mbf.onnx", b"not needed")
    mirror.files["/zips/buffalo_s.zip"] = buffalo_s.getvalue()
    entries = [{"path": det_500m, "size": None, "sha256": None,
                "sources": [{"url": f"{mirror.url}/files/inswapper_128.onnx"},  # a swapper is no detector: refused
                            {"url": f"{mirror.url}/zips/buffalo_s.zip", "member": "det_500m.onnx"}]}]
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"files": entries}))
    models = tmp_path / "models"
    assert run("models", "pull", "--models-dir", str(models), "--manifest", str(manifest)) == 0
    err = capsys.readouterr().err
    assert "wrong contract" in err and "not a usable detector like det_500m" in err
    assert (models / det_500m).read_bytes() == files[DETECTOR.relative_path]
    assert run("models", "verify", "--models-dir", str(models), "--manifest", str(manifest)) == 0
    assert capsys.readouterr().out.strip() == f"{det_500m}: OK"


def test_ensure_downloads_only_what_is_missing_and_only_with_the_licence_accepted(
        mirror: Mirror, files: dict, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(tmp_path / "m.json", files, standard_sources(mirror.url, ["/files/inswapper_128.onnx"]))
    models = tmp_path / "models"
    monkeypatch.delenv("SWAPAROONY_ACCEPT_MODEL_LICENCE", raising=False)
    assert run("models", "ensure", "--models-dir", str(models), "--manifest", str(manifest)) == 1  # stdin is no terminal
    err = capsys.readouterr().err
    assert "non-commercial research" in err and "SWAPAROONY_ACCEPT_MODEL_LICENCE=1" in err and not models.exists()
    monkeypatch.setenv("SWAPAROONY_ACCEPT_MODEL_LICENCE", "1")
    assert run("models", "ensure", "--models-dir", str(models), "--manifest", str(manifest)) == 0
    assert all((models / spec.relative_path).read_bytes() == files[spec.relative_path] for spec in service_files())
    requests = len(mirror.requests)
    assert run("models", "ensure", "--models-dir", str(models), "--manifest", str(manifest)) == 0
    assert "model files in place" in capsys.readouterr().out and len(mirror.requests) == requests


def test_an_optional_model_is_pulled_only_with_its_key_and_says_its_licence(
        mirror: Mirror, files: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gfpgan = enhancer_model().SerializeToString()
    mirror.files["/files/gfpgan_1.4.onnx"] = gfpgan
    manifest = write_manifest(tmp_path / "m.json", files, standard_sources(mirror.url, ["/files/inswapper_128.onnx"]))
    listed = json.loads(manifest.read_text())  # a mirror's manifest may list optional files; no checksum is known
    listed["files"].append({"path": "gfpgan_1.4.onnx", "size": None, "sha256": None,
                            "sources": [{"url": f"{mirror.url}/files/gfpgan_1.4.onnx"}]})
    manifest.write_text(json.dumps(listed))
    models = tmp_path / "models"
    assert run("models", "pull", "--models-dir", str(models), "--manifest", str(manifest)) == 0
    assert not (models / "gfpgan_1.4.onnx").exists()
    capsys.readouterr()
    assert run("models", "pull", "--models-dir", str(models), "--manifest", str(manifest), "--with", "gfpgan_1.4") == 0
    assert (models / "gfpgan_1.4.onnx").read_bytes() == gfpgan
    assert "GFPGAN 1.4 (TencentARC): Apache-2.0" in capsys.readouterr().err
    assert run("models", "verify", "--models-dir", str(models), "--manifest", str(manifest), "--with", "gfpgan_1.4") == 0
    assert "gfpgan_1.4.onnx: OK" in capsys.readouterr().out
    assert main(["models", "list", "--models-dir", str(models)]) == 0
    listing = capsys.readouterr().out
    assert "gfpgan_1.4.onnx                installed" in listing and "CodeFormer (sczhou): S-Lab License 1.0, non-commercial" in listing
    assert run("models", "pull", "--models-dir", str(models), "--manifest", str(manifest), "--with", "codeformer") == 1
    assert "does not list codeformer.onnx" in capsys.readouterr().err
    assert run("models", "pull", "--models-dir", str(models), "--with", "gfpgan_9") == 1
    assert "no optional model is called gfpgan_9; known: gfpgan_1.4, restoreformer_plus_plus" in capsys.readouterr().err
