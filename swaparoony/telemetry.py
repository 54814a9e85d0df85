"""What the engine reports about each request (stage timings, faces found, upload sizes), to whoever listens.

The core stays framework-free: the service passes in an implementation that feeds Prometheus.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

class Telemetry(Protocol):
    """Receives the engine's measurements."""

    def stage(self, name: str, seconds: float) -> None: ...

    def faces_found(self, count: int) -> None: ...

    def upload(self, size: int) -> None: ...

    def frames_swapped(self, count: int) -> None:
        """Frames of clips swapped in one request (not reported for a request with no moving destination)."""


class NoTelemetry:
    """Listens to nothing (the CLI, tests and benchmarks)."""

    def stage(self, name: str, seconds: float) -> None:
        pass

    def faces_found(self, count: int) -> None:
        pass

    def upload(self, size: int) -> None:
        pass

    def frames_swapped(self, count: int) -> None:
        pass


class ModelTelemetry(Protocol):
    """Receives the model service's batches: how many items each model ran, in how many session calls."""

    def model_run(self, model: str, items: int, calls: int) -> None: ...


class NoModelTelemetry:
    """Listens to nothing."""

    def model_run(self, model: str, items: int, calls: int) -> None:
        pass


@contextmanager
def timed(telemetry: Telemetry, stage: str) -> Iterator[None]:
    """Report the wall time of the block as the named stage."""
    started = time.perf_counter()
    try:
        yield
    finally:
        telemetry.stage(stage, time.perf_counter() - started)
