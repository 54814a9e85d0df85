"""The decode worker process: reads requests on stdin, decodes with image_file, writes BGR pixels to stdout.

Run by DecoderPool as `python -m swaparoony.imaging.decode_worker MEMORY_BYTES`. Once started it writes one
READY byte. A request is a 4-byte length, a JSON object of DecodeLimits, an 8-byte length and the file's bytes;
a reply is a 4-byte length, a JSON object ({"shape", "scale"} or {"error", "message"}, with the process's CPU
seconds so far as "cpu_s") and, on success, the BGR pixels.
"""

from __future__ import annotations

import json
import resource
import signal
import struct
import sys
import time
from typing import BinaryIO

import numpy as np

from ..errors import DecodeTooCostly, SwaparoonyError
from .image_file import DecodeLimits, read_bgr

HEADER_LENGTH = struct.Struct("!I")
"""Precedes each JSON header, a request's and a reply's."""
FILE_LENGTH = struct.Struct("!Q")
READY = b"R"
"""Written once the interpreter and codecs are loaded, so no decode's deadline pays for a worker's start-up."""


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer decode requests until the parent closes the pipe."""
    while (head := requests.read(HEADER_LENGTH.size)) and len(head) == HEADER_LENGTH.size:
        _answer(HEADER_LENGTH.unpack(head)[0], requests, replies)  # its file and pixels go before the next one is read


def _answer(meta_size: int, requests: BinaryIO, replies: BinaryIO) -> None:
    limits = DecodeLimits(**json.loads(requests.read(meta_size)))
    data = requests.read(FILE_LENGTH.unpack(requests.read(FILE_LENGTH.size))[0])
    pixels: bytes | memoryview = b""
    try:
        bgr, scale = read_bgr(data, limits)
        reply: dict[str, object] = {"shape": list(bgr.shape), "scale": scale}
        pixels = np.ascontiguousarray(bgr).data  # written as it is, no copy
    except MemoryError:
        error = DecodeTooCostly("The image needs more memory to decode than the service allows.")
        reply = {"error": type(error).__name__, "message": str(error)}
    except SwaparoonyError as exc:
        reply = {"error": type(exc).__name__, "message": str(exc)}
    del data
    reply["cpu_s"] = time.process_time()  # the pool's baseline for the next decode's CPU deadline
    encoded = json.dumps(reply).encode()
    replies.write(HEADER_LENGTH.pack(len(encoded)) + encoded)
    replies.write(pixels)
    replies.flush()


def main() -> None:
    memory_bytes = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # BentoML's supervisor sends SIGTERM to the API worker's children too, and a terminal's Ctrl+C reaches
    # the whole process group; the API worker still has uploads to decode while it drains. It ends this
    # process itself: by closing the pipe (EOF) or, for a decode past its deadline, with SIGKILL.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
