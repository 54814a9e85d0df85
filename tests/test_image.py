"""The OCI images: built offline with debootstrap and buildah, run as OpenShift's restricted-v2 runs them (an arbitrary
UID in group 0). The CPU image swaps; the GPU image, on this machine without an NVIDIA driver, refuses CUDA with the
reason on /readyz and stays up (no crash loop), and serves a swap on CPU when told to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import REPO, encode, upload_image
from serving import free_port
from test_bento import run, write_manifest

ARBITRARY_UID = "1000680000"  # what OpenShift's restricted-v2 might assign; group 0 comes with it
BUILDAH = ["buildah", "--storage-driver", "vfs"]
UPLOAD = encode(upload_image())

pytestmark = [pytest.mark.build, pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("buildah") or not shutil.which("debootstrap"),
    reason="needs root, buildah and debootstrap (.ci/run installs them)",
)]


def build_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml_home"), "BENTOML_DO_NOT_TRACK": "True",
            "WORK": str(tmp_path / "image"), "PYTHON": sys.executable}


def buildah(*argv: str) -> str:
    return subprocess.run([*BUILDAH, *argv], capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def container_of(image: str) -> Iterator[str]:
    """A working container of the image; the container and the image are removed afterwards."""
    container = buildah("from", image)
    try:
        yield container
    finally:
        subprocess.run([*BUILDAH, "rm", container], capture_output=True)
        subprocess.run([*BUILDAH, "rmi", image], capture_output=True)


def as_openshift(container: str, *options: str) -> list[str]:
    """`buildah run` as an arbitrary UID in group 0, as OpenShift's restricted-v2 runs a container."""
    return [*BUILDAH, "run", "--isolation", "chroot", "--user", f"{ARBITRARY_UID}:0", *options, container, "--"]


@contextmanager
def serving(container: str, log: Path, *options: str) -> Iterator[str]:
    """The image's own command (bentoml serve of its Bento) on a free port of 127.0.0.1; yields its URL."""
    port = free_port()
    server = subprocess.Popen([*as_openshift(container, *options), "bentoml", "serve", "/home/bentoml/bento", "--host",
                              "127.0.0.1", "--port", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)


def readyz_until(url: str, done: Callable[[httpx.Response], bool], timeout_s: float = 180) -> httpx.Response:
    """/readyz, asked until its answer is done or the time is up (then the last answer, or raise)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = httpx.get(url + "/readyz", timeout=5)
            if done(answer) or time.monotonic() > deadline:
                return answer
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def swaps(url: str) -> None:
    response = httpx.post(url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, timeout=120)
    assert response.status_code == 200 and response.json()["swapped_images"], response.text[:500]


def test_image_runs_as_an_arbitrary_uid_in_group_0(tmp_path: Path, models_dir: Path) -> None:
    env = build_env(tmp_path)
    image = f"swaparoony-test-{os.getpid()}:cpu"
    run(sys.executable, "-m", "swaparoony", "models", "import", "--from", str(models_dir), "--models-dir",
        str(tmp_path / "models"), "--manifest", str(write_manifest(tmp_path, models_dir)), env=env)
    run(sys.executable, "-m", "bentoml", "build", "-f", "bentofile.cpu.yaml", str(REPO), env=env)
    built = run("bash", "image/build.sh", "swaparoony-cpu:latest", image, env=env)
    assert f"built {image}" in built
    with container_of(image) as container:
        identity = subprocess.run([*as_openshift(container), "sh", "-c", "id -u; id -g"], capture_output=True,
                                  text=True, check=True)
        assert identity.stdout.split() == [ARBITRARY_UID, "0"]
        command = buildah("inspect", "--format", "{{.OCIv1.Config.Cmd}}", image)
        assert "bentoml serve" in command.replace("[", "").replace("]", "")
        log = tmp_path / "image.log"
        with serving(container, log) as url:
            assert readyz_until(url, lambda answer: answer.status_code == 200, 120).status_code == 200, log.read_text()[-3000:]
            swaps(url)
        assert "PermissionError" not in log.read_text()


@pytest.mark.skipif(os.environ.get("SWAPAROONY_SKIP_GPU_IMAGE") == "1",
                    reason="SWAPAROONY_SKIP_GPU_IMAGE=1: the GPU image downloads about 3 GB of CUDA wheels")
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="checks the refusal a node without a driver gives")
def test_gpu_image_refuses_cuda_without_a_driver_says_why_and_serves_on_cpu_when_told(tmp_path: Path,
                                                                                       models_dir: Path) -> None:
    env = build_env(tmp_path)
    image = f"swaparoony-test-{os.getpid()}:gpu"
    run(sys.executable, "-m", "bentoml", "build", "-f", "bentofile.yaml", str(REPO), env=env)  # no models: mounted
    built = run("bash", "image/build.sh", "swaparoony:latest", image, env=env)
    assert "onnxruntime-gpu==1.26.0" in built and "nvidia-cudnn-cu12==9." in built, built[-2000:]
    mounted = tmp_path / "mounted"  # readable by the arbitrary UID, as a volume of model files would be
    shutil.copytree(models_dir, mounted)
    for path in [mounted, *mounted.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    models = ("--volume", f"{mounted}:/models:ro", "--env", "SWAPAROONY_MODELS_DIR=/models")
    with container_of(image) as container:
        log = tmp_path / "gpu.log"
        with serving(container, log, *models) as url:
            refused = readyz_until(url, lambda answer: "CUDA" in answer.text)
            assert refused.status_code == 503, log.read_text()[-3000:]
            assert refused.json()["error"].startswith("CUDA was asked for, but no NVIDIA driver answers"), refused.text
            assert "SWAPAROONY_PROVIDERS=CPUExecutionProvider" in refused.json()["error"]
            time.sleep(15)  # BentoML restarted a model worker that exited every ~10 s
            assert log.read_text().count("CUDA refused") == 1, log.read_text()[-3000:]
            assert "CUDA was asked for" in readyz_until(url, lambda answer: True).json()["error"]
        cpu = tmp_path / "cpu.log"
        with serving(container, cpu, *models, "--env", "SWAPAROONY_PROVIDERS=CPUExecutionProvider") as url:
            assert readyz_until(url, lambda answer: answer.status_code == 200).status_code == 200, cpu.read_text()[-3000:]
            swaps(url)
        assert "PermissionError" not in log.read_text() + cpu.read_text()
