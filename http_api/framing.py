"""HTTP/1.1 framing bounded before any application code: the request line, the headers, their deadline, connections.

uvicorn's httptools protocol feeds every byte to llhttp, and httptools joins the pieces of a header into
one Python bytes object until its line ends: a client that sends one endless header line, or endless
header lines, grows the worker by gigabytes, and one that never finishes its headers keeps its socket
(and a file descriptor) for ever. FramingProtocol measures each request's head as it arrives, before the
parser sees it, so at most one read (about 256 KB) more than the bound is ever held; a crossed bound is
answered 414 or 431, a head that has not arrived within `header_timeout_s` is answered 408, and each
such connection is closed. Past `max_connections` open connections a new one is closed at once.

http_api/patches.py makes this uvicorn's "auto" HTTP protocol and sets `FramingProtocol.limits` once per
worker: BentoML builds uvicorn's Config itself and offers no way to pass a protocol class or its options.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from swaparoony.settings import Settings

logger = logging.getLogger("swaparoony")
SPARE_FILES = 256
"""File descriptors a worker needs besides its clients: listening and model-service sockets, decode-process
pipes, Prometheus's files, logs."""


@dataclass(frozen=True)
class FramingLimits:
    """The bounds on a request's head and on a worker's connections."""

    header_timeout_s: float
    max_request_line_bytes: int
    max_header_line_bytes: int
    max_headers: int
    max_header_bytes: int
    max_connections: int

    @classmethod
    def of(cls, settings: Settings, max_connections: int | None = None) -> FramingLimits:
        """The settings' bounds; `max_connections` where the worker can hold fewer than the settings ask."""
        return cls(settings.header_timeout_s, settings.max_request_line_bytes, settings.max_header_line_bytes,
                   settings.max_headers, settings.max_header_bytes, max_connections or settings.max_connections)


class HeadRefused(Exception):
    """The request's head cannot be taken; `status`, `code` and the message say why (naming the bound and its
    variable, never the submitted bytes)."""

    status = 400
    code = "bad_request"

    def __init__(self, bound: str, variable: str) -> None:
        super().__init__(f"Refused: {bound} ({variable}); the connection is closed.")
        self.bound = f"{bound} ({variable})"


class RequestLineTooLong(HeadRefused):
    """More bytes in the request line than SWAPAROONY_MAX_REQUEST_LINE_BYTES."""

    status = 414
    code = "request_line_too_long"


class HeadersTooLarge(HeadRefused):
    """A header line, the header count or the whole head past its bound."""

    status = 431
    code = "headers_too_large"


class HeadTooSlow(HeadRefused):
    """The request line and headers did not all arrive within SWAPAROONY_HEADER_TIMEOUT_S."""

    status = 408
    code = "header_timeout"


class HeadMeter:
    """Counts one request's head as its bytes arrive, up to the blank line that ends it: the line being read,
    the lines, the total.

    A head that begins behind another request in one read (pipelining) is met where its start in that read is
    unknown: `behind` then holds the read's last bytes, and only the head's total is bounded, from the next read.
    """

    def __init__(self, limits: FramingLimits, behind: bytes | None = None) -> None:
        self.limits = limits
        self.behind = behind
        self.lines = 0  # finished lines, the request line first
        self.line_bytes = 0
        self.total = 0
        self.done = False

    def take(self, data: bytes) -> None:
        """Measure the head's part of `data`; raises HeadRefused as soon as a bound is crossed."""
        if self.behind is not None:
            self._take_behind(self.behind, data)
            return
        start = 0
        while not self.done:
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end + 1
            self.line_bytes += stop - start
            self.total += stop - start
            self._check_line()
            if end < 0:
                return
            self._finish_line()
            start = stop

    def _take_behind(self, behind: bytes, data: bytes) -> None:
        window = behind + data  # the blank line's CRLF CRLF may straddle two reads
        end = window.find(b"\r\n\r\n")
        self.total += len(data) if end < 0 else max(end + 4 - len(behind), 0)
        self.done = end >= 0
        self.behind = window[-3:]
        self._check_total()

    def _check_line(self) -> None:
        limits = self.limits
        if self.lines == 0 and self.line_bytes > limits.max_request_line_bytes:
            raise RequestLineTooLong(f"a request line longer than {limits.max_request_line_bytes} bytes",
                                     "SWAPAROONY_MAX_REQUEST_LINE_BYTES")
        if self.lines > 0 and self.line_bytes > limits.max_header_line_bytes:
            raise HeadersTooLarge(f"a header line longer than {limits.max_header_line_bytes} bytes",
                                  "SWAPAROONY_MAX_HEADER_LINE_BYTES")
        self._check_total()

    def _check_total(self) -> None:
        if self.total > self.limits.max_header_bytes:
            raise HeadersTooLarge(f"a request line and headers longer than {self.limits.max_header_bytes} bytes in all",
                                  "SWAPAROONY_MAX_HEADER_BYTES")

    def _finish_line(self) -> None:
        blank = self.line_bytes <= 2  # CRLF alone
        self.line_bytes = 0
        if blank and self.lines > 0:
            self.done = True
        elif not blank:  # empty lines before the request line are allowed (RFC 9112 2.2)
            self.lines += 1
            if self.lines - 1 > self.limits.max_headers:
                raise HeadersTooLarge(f"more than {self.limits.max_headers} header lines", "SWAPAROONY_MAX_HEADERS")


class FramingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with each request's head bounded in bytes, lines and time, and the
    worker's connections in number."""

    limits: ClassVar[FramingLimits] = FramingLimits.of(Settings())
    """Set once per worker by http_api/patches.py (uvicorn builds the protocol from its class alone)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head: HeadMeter | None = None
        self.head_deadline: asyncio.TimerHandle | None = None
        self.message_ended = False  # the last request ended with the last read: the next read starts a head
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.refused = True
            logger.warning("%s: closed at once: this worker already holds %d connections (SWAPAROONY_MAX_CONNECTIONS)",
                           self._peer(), self.limits.max_connections)
            transport.close()
            return
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.head is None and self.message_ended:
            self._start_head()
        if self.head is not None:
            try:
                self.head.take(data)
            except HeadRefused as error:
                self._refuse(error)
                return
        metered = self.head
        super().data_received(data)
        if self.head is not None and not self.refused and (self.head is not metered or self.head.done):
            # A head began behind another request in this read, or the parser did not end the head where the
            # meter did: measure its total from the next read.
            self.head = HeadMeter(self.limits, behind=data[-3:])

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.message_ended = False
        if self.head is None:
            self._start_head()  # replaced by a `behind` meter once this read is parsed

    def on_headers_complete(self) -> None:
        self._disarm_deadline()
        self.head = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.message_ended = True

    def _start_head(self) -> None:
        """A request's first byte has arrived, or the connection has opened: measure its head from here, and
        give it header_timeout_s to arrive."""
        self.head = HeadMeter(self.limits)
        self._arm_deadline()

    def _arm_deadline(self) -> None:
        if self.head_deadline is None:
            self.head_deadline = self.loop.call_later(self.limits.header_timeout_s, self._head_too_slow)

    def _disarm_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_too_slow(self) -> None:
        self.head_deadline = None
        if self.head is None or self.transport.is_closing():
            return
        if self.head.total == 0 and self.cycle is None:
            self.refused = True
            self.transport.close()  # sent nothing at all: no request to answer
            return
        seconds = self.limits.header_timeout_s
        self._refuse(HeadTooSlow(f"a request line and headers not all received within {seconds:g} s",
                                 "SWAPAROONY_HEADER_TIMEOUT_S"))

    def _refuse(self, error: HeadRefused) -> None:
        """Answer the refusal and close, or, while an earlier request on this connection is still being
        answered, stop reading and close once that answer is sent."""
        self.refused = True
        self.head = None
        self._disarm_deadline()
        logger.warning("%s: answered %d: %s; connection closed", self._peer(), error.status, error.bound)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        body = json.dumps({"error": str(error), "code": error.code}).encode()
        head = [STATUS_LINE[error.status]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                 b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _peer(self) -> str:
        return "%s:%d" % self.client if self.client else "a client"


def fit_connections(max_connections: int) -> int:
    """Raise this process's soft open-files limit towards the hard one so `max_connections` clients fit beside
    SPARE_FILES; returns how many connections do fit (fewer, with a warning, when the hard limit is lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    fits = max(soft - SPARE_FILES, 1)
    logger.warning("SWAPAROONY_MAX_CONNECTIONS=%d needs %d open files, but their hard limit is %d: each worker takes "
                   "at most %d connections (raise the hard limit, the container's nofile ulimit, to take more)",
                   max_connections, wanted, hard, fits)
    return fits
