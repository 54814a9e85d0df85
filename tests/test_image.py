"""The OCI image: built offline with debootstrap and buildah, run as OpenShift's restricted-v2 runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import REPO, encode, upload_image
from serving import free_port
from test_bento import run, write_manifest

ARBITRARY_UID = "1000680000"  # what OpenShift's restricted-v2 might assign; group 0 comes with it
BUILDAH = ["buildah", "--storage-driver", "vfs"]

pytestmark = [pytest.mark.build, pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("buildah") or not shutil.which("debootstrap"),
    reason="needs root, buildah and debootstrap (.ci/run installs them)",
)]


def test_image_runs_as_an_arbitrary_uid_in_group_0(tmp_path: Path, models_dir: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml_home"), "BENTOML_DO_NOT_TRACK": "True",
           "WORK": str(tmp_path / "image"), "PYTHON": sys.executable}
    image = f"swaparoony-test-{os.getpid()}:cpu"
    run(sys.executable, "-m", "swaparoony", "models", "import", "--from", str(models_dir), "--models-dir",
        str(tmp_path / "models"), "--manifest", str(write_manifest(tmp_path, models_dir)), env=env)
    run(sys.executable, "-m", "bentoml", "build", "-f", "bentofile.cpu.yaml", str(REPO), env=env)
    built = run("bash", "image/build.sh", "swaparoony-cpu:latest", image, env=env)
    assert f"built {image}" in built
    container = subprocess.run([*BUILDAH, "from", image], capture_output=True, text=True, check=True).stdout.strip()
    server = None
    try:
        as_openshift = [*BUILDAH, "run", "--isolation", "chroot", "--user", f"{ARBITRARY_UID}:0", container, "--"]
        identity = subprocess.run([*as_openshift, "sh", "-c", "id -u; id -g"], capture_output=True, text=True, check=True)
        assert identity.stdout.split() == [ARBITRARY_UID, "0"]
        port = free_port()
        command = subprocess.run([*BUILDAH, "inspect", "--format", "{{.OCIv1.Config.Cmd}}", image],
                                 capture_output=True, text=True, check=True).stdout
        assert "bentoml serve" in command.replace("[", "").replace("]", "")
        server = subprocess.Popen([*as_openshift, "bentoml", "serve", "/home/bentoml/bento", "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=(tmp_path / "image.log").open("w"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert httpx.get(url + "/readyz").status_code == 200, (tmp_path / "image.log").read_text()[-3000:]
        response = httpx.post(url + "/swap", files={"image": ("me.jpg", encode(upload_image()), "image/jpeg")}, timeout=120)
        assert response.status_code == 200 and response.json()["swapped_images"], response.text[:500]
        assert "PermissionError" not in (tmp_path / "image.log").read_text()
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)
        subprocess.run([*BUILDAH, "rm", container], capture_output=True)
        subprocess.run([*BUILDAH, "rmi", image], capture_output=True)
