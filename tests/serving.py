"""Start and stop a real `bentoml serve` of this repository on 127.0.0.1 (tests and benchmarks)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running `bentoml serve` and where to reach it."""

    url: str
    process: subprocess.Popen
    log_path: Path
    workdir: Path
    tmpdir: Path
    env: dict[str, str] = field(default_factory=dict)
    """The SWAPAROONY_* settings it was started with (and any other variables given)."""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp: Path, env: dict[str, str], wait_ready: bool = True, target: str = "service:Swaparoony",
                 cwd: Path = REPO) -> Server:
    """Start the service from the repo, as the README does, and wait for /readyz (or just /livez)."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / "server.log"
    # BentoML puts its Unix sockets in TMPDIR, and their paths must stay under 108 bytes.
    short_tmp = Path(tempfile.mkdtemp(prefix="sw-", dir="/tmp"))
    full_env = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml_home"), "TMPDIR": str(short_tmp),
                "SWAPAROONY_STATE_DIR": str(tmp / "state"), **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd, env=full_env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    probe = "/readyz" if wait_ready else "/livez"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url + probe, timeout=2).status_code == 200:
                return Server(url, process, log_path, tmp, short_tmp, env)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # a start takes seconds; a coarser poll only adds to each of the suite's dozen-odd starts
    stop_server(process)
    raise RuntimeError(f"server not ready in time:\n{log_path.read_text()}")


def stop_server(process: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM the whole process group, then make sure it is gone: SIGKILL after grace_s, with a warning, since a
    clean stop takes a second or two (the tests that check draining send SIGTERM and wait themselves)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            warnings.warn(f"the server (pid {process.pid}) did not exit within {grace_s:g} s of SIGTERM; killed",
                          stacklevel=2)


class SharedServer:
    """One configuration's server, started when a test first wants it and shared by the tests after it, until a test
    takes it to stop or kill it itself (the next test to want one gets a fresh server)."""

    def __init__(self, tmp: Path, env: dict[str, str], wait_ready: bool = True) -> None:
        self.tmp = tmp
        self.env = env
        self.wait_ready = wait_ready
        self._server: Server | None = None
        self._starts = 0

    def get(self) -> Server:
        """The running server, started if there is none (or it has exited)."""
        if self._server is None or self._server.process.poll() is not None:
            self._starts += 1
            self._server = start_server(self.tmp / f"server{self._starts}", self.env, self.wait_ready)
        return self._server

    def take(self) -> Server:
        """The running server, no longer shared: the caller stops it."""
        server, self._server = self.get(), None
        return server

    def close(self) -> None:
        if self._server is not None:
            stop_server(self._server.process)
            self._server = None


def metric(server: Server, series: str) -> float:
    """One series' value from the server's /metrics (0 when it has not been written yet)."""
    found = re.search(rf"^{re.escape(series)} (\S+)$", httpx.get(server.url + "/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    """Poll until a state holds (never a fixed sleep), failing with `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
