"""Decoding in worker processes that can be stopped: a deadline per decode and a memory limit per process.

A hostile file can be valid and still cost minutes of CPU or gigabytes to decode. In a thread that
work cannot be stopped, and it holds up shutdown; in a process it is killed at its deadline and the
process replaced. Its address space is capped, so an allocation past the cap fails in the worker
instead of growing the service towards its pod's memory limit.

The deadline counts the worker's own CPU time on the decode, not the wall clock: the thread that
waits for it may itself wait for the API worker's GIL (an event loop busy with a large JSON body)
while the reply sits finished in the pipe, and that wait is no fault of the image.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from .. import errors
from ..errors import DecodeTooCostly, DecodeWorkerLost, ServiceNotReady, SwaparoonyError, UndecodableImage
from ..types import DecodedImage
from .decode_worker import FILE_LENGTH, HEADER_LENGTH, READY
from .image_file import DecodeLimits

logger = logging.getLogger(__name__)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 60.0
"""How long a new worker may take to load Python and the codecs (seconds on a loaded node, not minutes)."""
CPU_TICK_S = 0.01
"""The kernel counts a process's CPU time in ticks of 10 ms: looking again sooner cannot see more spent."""
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
"""One thread each: a decode is single-threaded, and BLAS thread pools would reserve address space."""
BACKSTOP_FACTOR = 3
"""A decode that has spent less than its CPU timeout still ends at this many timeouts of wall clock (15 s for
the default 5 s), so a stopped worker, or one starved of CPU on an overloaded node, cannot hold its slot for ever."""


class DecoderPool:
    """A fixed set of decode worker processes; decode() blocks until one is free."""

    def __init__(self, processes: int, timeout_s: float, memory_bytes: int,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self.startup_timeout_s = startup_timeout_s
        self._idle: queue.Queue[_Worker] = queue.Queue()
        for _ in range(processes):
            self._idle.put(_Worker(memory_bytes))

    def decode(self, data: bytes, limits: DecodeLimits) -> DecodedImage:
        """Decode in a worker; a decode past its CPU deadline is killed and refused as too costly."""
        worker = self._idle.get()
        if worker.process.poll() is not None:  # died while idle (killed from outside): not this image's fault
            worker.kill()
            worker = _Worker(self.memory_bytes)
        try:
            if not worker.ready:  # a replacement started after a kill may still be loading
                worker.wait_until_ready(time.monotonic() + self.startup_timeout_s)
            return worker.decode(data, limits, _CpuDeadline(worker.usage, self.timeout_s, worker.cpu_s))
        except DecodeWorkerLost as exc:
            worker.kill()
            worker = _Worker(self.memory_bytes)
            if exc.timed_out:
                logger.warning("a decode ran past %s s of CPU and was stopped", self.timeout_s)
                raise DecodeTooCostly(
                    f"The image could not be decoded within {self.timeout_s:g} seconds; it may be built to be slow "
                    "to decode. Re-save it as an ordinary JPEG or PNG."
                ) from None
            if exc.stalled:
                logger.error("a decode worker spent under %s s of CPU in %s s of waiting (stopped or starved) and was "
                             "replaced", self.timeout_s, BACKSTOP_FACTOR * self.timeout_s)
                raise ServiceNotReady("The image decoder is overloaded; retry shortly.") from None
            if exc.starting:
                logger.error("a decode worker did not start within %s s", self.startup_timeout_s)
                raise ServiceNotReady("The image decoder could not start; retry shortly.") from None
            raise UndecodableImage("The image could not be decoded; the decoder stopped on it.") from None
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        """Stop every idle worker (call once no decode is running)."""
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                return


class _WallDeadline:
    """A point on the wall clock: a new worker's start-up."""

    def __init__(self, at: float) -> None:
        self.at = at

    def next_wait_s(self, waited_s: float) -> float:
        """Seconds still to wait; raises once there are none."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise DecodeWorkerLost(timed_out=False, starting=True)
        return left


class _CpuDeadline:
    """timeout_s of the worker's CPU time on this decode, and BACKSTOP_FACTOR timeouts of waiting on a worker that
    spends less: stopped, or starved of CPU.

    The backstop counts only the time this thread sat waiting with nothing to read or write, never the time it
    waited for the GIL, so a long wait to run is not taken for a stalled worker either."""

    def __init__(self, process: psutil.Process, timeout_s: float, cpu_start: float) -> None:
        self.process = process
        self.timeout_s = timeout_s
        self.cpu_start = cpu_start
        self.started = time.monotonic()
        self.waited_s = 0.0

    def next_wait_s(self, waited_s: float) -> float:
        """After waiting waited_s for nothing, how long to wait next: never long enough to pass either bound."""
        self.waited_s += waited_s
        elapsed = time.monotonic() - self.started
        if elapsed < self.timeout_s:  # one thread cannot have spent more CPU than that: no need to read it
            left = self.timeout_s - elapsed
        else:
            spent = _cpu_seconds(self.process) - self.cpu_start
            if spent >= self.timeout_s:
                raise DecodeWorkerLost(timed_out=True)
            left = max(self.timeout_s - spent, CPU_TICK_S)
        backstop = BACKSTOP_FACTOR * self.timeout_s - self.waited_s
        if backstop <= 0:
            raise DecodeWorkerLost(timed_out=False, stalled=True)
        return min(left, backstop)


def _cpu_seconds(process: psutil.Process) -> float:
    """A worker's CPU seconds so far, user and system; infinite once it is gone (the pipe says so too, and is read
    first)."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return float("inf")
    return times.user + times.system


class _Worker:
    """One decode worker process and the pipes to it."""

    def __init__(self, memory_bytes: int) -> None:
        path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "swaparoony.imaging.decode_worker", str(memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, **WORKER_ENV, "PYTHONPATH": path},
        )
        # typeshed types Popen's pipes Optional whatever was asked for; PIPE above sets both.
        self.requests: int = self.process.stdin.fileno()  # type: ignore[union-attr]
        self.replies: int = self.process.stdout.fileno()  # type: ignore[union-attr]
        os.set_blocking(self.requests, False)  # so no write or read can outlast the deadline
        os.set_blocking(self.replies, False)
        self.usage = psutil.Process(self.process.pid)  # its CPU time, for the decode deadline
        self.cpu_s = 0.0
        """The worker's CPU seconds when it last answered (its own count, sent with each reply): the next decode's
        baseline, so a decode reads /proc only once its wall clock passes the timeout. What the worker spends
        writing that reply is counted into the next decode, a millisecond or so, on the strict side."""
        self.ready = False

    def wait_until_ready(self, deadline: float) -> None:
        """Read the worker's READY byte; no decode deadline runs while it loads."""
        try:
            self.ready = bytes(self._read(len(READY), _WallDeadline(deadline))) == READY
        except DecodeWorkerLost:
            self.ready = False
        if not self.ready:
            raise DecodeWorkerLost(timed_out=False, starting=True)
        self.cpu_s = _cpu_seconds(self.usage)  # loading Python and the codecs is no decode's

    def decode(self, data: bytes, limits: DecodeLimits, deadline: _CpuDeadline) -> DecodedImage:
        meta = json.dumps(limits.to_dict()).encode()
        self._write(HEADER_LENGTH.pack(len(meta)) + meta + FILE_LENGTH.pack(len(data)), deadline)
        self._write(data, deadline)
        reply = json.loads(self._read(HEADER_LENGTH.unpack(self._read(HEADER_LENGTH.size, deadline))[0], deadline))
        self.cpu_s = float(reply.get("cpu_s", self.cpu_s))
        if "error" in reply:
            error = getattr(errors, reply["error"], None)
            raise (error if isinstance(error, type) and issubclass(error, SwaparoonyError) else UndecodableImage)(reply["message"])
        pixels = self._read(int(np.prod(reply["shape"])), deadline)
        return DecodedImage(np.frombuffer(pixels, np.uint8).reshape(reply["shape"]), reply["scale"])

    def _write(self, data: bytes, deadline: _WallDeadline | _CpuDeadline) -> None:
        view = memoryview(data)
        while view:
            self._wait(select.POLLOUT, self.requests, deadline)
            try:
                view = view[os.write(self.requests, view):]
            except BlockingIOError:
                continue
            except OSError:  # the worker is gone
                raise DecodeWorkerLost(timed_out=False) from None

    def _read(self, size: int, deadline: _WallDeadline | _CpuDeadline) -> bytearray:
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size:
            self._wait(select.POLLIN, self.replies, deadline)
            try:
                read = os.readv(self.replies, [view[got:]])
            except BlockingIOError:
                continue
            if read == 0:  # the worker is gone
                raise DecodeWorkerLost(timed_out=False)
            got += read
        return buffer

    @staticmethod
    def _wait(event: int, fd: int, deadline: _WallDeadline | _CpuDeadline) -> None:
        poller = select.poll()
        poller.register(fd, event)
        wait_s = 0.0  # look first: a reply already in the pipe is never late, however long this thread waited to run
        while not poller.poll(wait_s * 1000):
            wait_s = deadline.next_wait_s(wait_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
