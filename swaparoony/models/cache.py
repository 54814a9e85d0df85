"""What start-up learns about a model file, kept so the next start-up does not learn it again.

Hashing the three release files takes about 0.7 s, and reading inswapper's emap means parsing the whole
554 MB protobuf (0.6 s, 518 MB transient). Both are facts about a file's bytes: hashes are kept by the
file's size, modification time and inode, the emap by the file's SHA-256. Without a writable directory
nothing is kept and everything is computed, as before.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .onnx_loader import parsed, sha256_of, trailing_initializer
from .specs import ModelSpec

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)
HASHES_FILE = "model-hashes.json"


class ModelCache:
    """Verified hashes and emaps under directory (the service's state directory), or nothing kept if None."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def sha256(self, path: Path) -> str:
        """The file's SHA-256, hashed again only when its size, mtime or inode changed."""
        info = path.stat()
        key = f"{path.resolve()}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
        known = self._hashes()
        if key not in known:
            known[key] = sha256_of(path)
            self._write(HASHES_FILE, json.dumps(known, indent=0).encode())
        return known[key]

    def emap(self, path: Path, spec: ModelSpec, model: onnx.ModelProto | None = None) -> np.ndarray:
        """inswapper's emap: from the model already parsed, from the cache, or by parsing the file once."""
        name = f"emap-{self.sha256(path)}.npy" if self.directory is not None else None
        if model is None and name is not None and (self.directory / name).is_file():  # type: ignore[operator]
            try:
                return np.load(self.directory / name)  # type: ignore[operator]
            except (OSError, ValueError) as exc:
                logger.warning("cached emap %s unreadable (%s); reading the model file", name, exc)
        if model is None:
            model = parsed(path, external_data=False)
        emap = trailing_initializer(model, path, spec)
        if name is not None:
            self._write(name, _npy(emap))
        return emap

    def _hashes(self) -> dict[str, str]:
        if self.directory is None:
            return {}
        try:
            return json.loads((self.directory / HASHES_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _write(self, name: str, data: bytes) -> None:
        """Write whole or not at all; a cache that cannot be written is only a slower start-up."""
        if self.directory is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # the service's state: this user's only
            partial = self.directory / f".{name}.{os.getpid()}.partial"
            partial.write_bytes(data)
            partial.replace(self.directory / name)
        except OSError as exc:
            logger.warning("cannot keep %s in %s (%s); start-up will compute it again", name, self.directory,
                           exc.strerror or exc)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
