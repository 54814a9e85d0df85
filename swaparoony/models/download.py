"""Getting model files into a models directory: download from mirrors, import, verify; never a bad file in place.

Every file is checked against its size and SHA-256 before it takes its final name; downloads resume
from a `.partial/` folder in the models directory after an interrupted transfer.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import TextIO

from ..errors import DownloadError
from .contract import check_contract
from .onnx_loader import CPU, file_mismatch
from .registry import ALL_FILES, FAMILIES, optional_files, service_files
from .scrfd import DEFAULT_DETECTOR
from .specs import ModelSpec, Source

CHUNK = 1024 * 1024
PARTIAL_DIR = ".partial"


@dataclass(frozen=True)
class FileEntry:
    """One file a models directory needs: where it goes, what it must hash to, where to get it."""

    path: str
    size: int | None
    sha256: str | None
    """None where no release checksum is known: such a file is checked by its contract instead."""
    sources: tuple[Source, ...]

    @classmethod
    def of(cls, spec: ModelSpec) -> FileEntry:
        return cls(spec.relative_path, spec.size, spec.sha256, spec.sources)


def manifest(path: Path | None = None, detector: str = DEFAULT_DETECTOR, extras: Sequence[str] = ()) -> list[FileEntry]:
    """The files the chosen detector's service needs and the optional ones asked for by key (`--with gfpgan_1.4`),
    from the built-in table or a JSON manifest with the same fields (for mirrors and tests), which may list optional
    files too: only those asked for are taken."""
    optional = optional_specs(extras)
    if path is None:
        return [FileEntry.of(spec) for spec in (*service_files({"detector": detector}), *optional)]
    data = json.loads(path.read_text())
    listed = [
        FileEntry(item["path"], int(item["size"]) if item.get("size") is not None else None, item.get("sha256"),
                  tuple(Source(s["url"], s.get("member")) for s in item["sources"]))
        for item in data["files"]
    ]
    paths = {spec.relative_path for spec in optional}
    unlisted = sorted(paths - {entry.path for entry in listed})
    if unlisted:
        raise DownloadError(f"{path} does not list {', '.join(unlisted)}")
    every_optional = {spec.relative_path for spec in optional_files()}
    return [entry for entry in listed if entry.path not in every_optional or entry.path in paths]


def optional_specs(keys: Sequence[str]) -> list[ModelSpec]:
    """The optional files (enhancers, face parsers, occluders) with these keys, or DownloadError naming the known."""
    known = {spec.key: spec for spec in optional_files()}
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise DownloadError(f"no optional model is called {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[key] for key in dict.fromkeys(keys)]


def is_verified(path: Path, entry: FileEntry) -> bool:
    """Whether the file is there and is the expected one."""
    return path.is_file() and mismatch(path, entry) is None


def mismatch(path: Path, entry: FileEntry) -> str | None:
    """Why a file is not the entry's, or None when it is (or when no checksum is known: see contract_problem)."""
    if entry.size is None or entry.sha256 is None:
        return contract_problem(path, entry)
    return file_mismatch(path, entry.size, entry.sha256)


def contract_problem(path: Path, entry: FileEntry) -> str | None:
    """Why a file cannot serve as its spec's model (loaded on CPU and checked by structure), or None."""
    import onnxruntime as ort

    spec = next((s for s in ALL_FILES if s.relative_path == entry.path), None)
    try:
        session = ort.InferenceSession(str(path), providers=[CPU])
        if spec is not None:
            check_contract(path, spec, session, FAMILIES[spec.role].find_outputs)
    except Exception as exc:  # corrupt protobufs and contract errors both mean "not usable"
        return f"wrong contract: {exc}"
    return None


class Progress:
    """A one-line progress display on a terminal stream, redrawn at most twice a second."""

    def __init__(self, stream: TextIO, label: str, total: int | None, start: int) -> None:
        self.stream, self.label, self.total, self.done = stream, label, total, start
        self.started, self.shown = time.monotonic(), 0.0

    def advance(self, count: int) -> None:
        self.done += count
        if time.monotonic() - self.shown >= 0.5:
            self.show()

    def show(self, end: str = "") -> None:
        self.shown = time.monotonic()
        rate = self.done / max(1e-6, self.shown - self.started) / 2**20
        of = f" of {self.total / 2**20:.1f}" if self.total else ""
        percent = f" {self.done / self.total:6.1%}" if self.total else ""
        self.stream.write(f"\r  {self.label}: {self.done / 2**20:.1f}{of} MiB{percent} ({rate:.1f} MiB/s){end}")
        self.stream.flush()


def fetch(url: str, target: Path, stream: TextIO, timeout: float = 60) -> Path:
    """Download url to target, resuming a partial file with an HTTP Range request."""
    have = target.stat().st_size if target.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "swaparoony-models"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already complete
            return target
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from exc
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        total = (have if resumed else 0) + int(length) if length else None
        progress = Progress(stream, f"{target.name} (resumed)" if resumed else target.name, total, have if resumed else 0)
        try:
            out = target.open("ab" if resumed else "wb")
        except OSError as exc:
            raise DownloadError(f"cannot write {target}: {exc.strerror or exc}") from exc
        with out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.HTTPException, OSError) as exc:
                    raise DownloadError(f"{url}: connection lost after {progress.done:,} bytes "
                                        f"({type(exc).__name__}); run pull again to resume") from exc
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DownloadError(f"cannot write {target}: {exc.strerror or exc}") from exc
                progress.advance(len(chunk))
        progress.show(end="\n")
    if total is not None and target.stat().st_size < total:
        raise DownloadError(f"{url}: got {target.stat().st_size:,} of {total:,} bytes; run pull again to resume")
    return target


def place(candidate: Path, final: Path, entry: FileEntry, origin: str) -> None:
    """Verify candidate, then give it the final name in one rename; a bad file is deleted, never placed."""
    problem = mismatch(candidate, entry)
    if problem:
        candidate.unlink(missing_ok=True)
        raise DownloadError(f"{entry.path} from {origin}: {problem}; refused")
    final.parent.mkdir(parents=True, exist_ok=True)
    candidate.replace(final)


def extract(archive: Path, member: str, into: Path) -> Path:
    """Copy one member of a zip (matched by file name, wherever it sits) to a file beside the archive."""
    with zipfile.ZipFile(archive) as zipped:
        names = [n for n in zipped.namelist() if Path(n).name == member]
        if not names:
            raise DownloadError(f"{archive.name}: has no {member}")
        with zipped.open(names[0]) as source, into.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
    return into


def pull(models_dir: Path, entries: list[FileEntry], stream: TextIO | None = None) -> list[str]:
    """Fetch every missing or unverified file, trying each source in order. Returns what was done."""
    stream = stream or sys.stderr
    partial = models_dir / PARTIAL_DIR
    report = []
    for entry in entries:
        final = models_dir / entry.path
        if is_verified(final, entry):
            report.append(f"{entry.path}: already verified")
            continue
        errors = []
        for source in entry.sources:
            try:
                partial.mkdir(parents=True, exist_ok=True)
                download = partial / (hashlib.sha1(source.url.encode()).hexdigest()[:16] + ".part")
                stream.write(f"{entry.path}: {source.url}\n")
                fetch(source.url, download, stream)
                candidate = extract(download, source.member, partial / f"{Path(entry.path).name}.candidate") if source.member else download
                place(candidate, final, entry, source.url)
                report.append(f"{entry.path}: downloaded and verified")
                break
            except (DownloadError, zipfile.BadZipFile, OSError) as exc:
                if isinstance(exc, zipfile.BadZipFile):
                    download.unlink(missing_ok=True)
                errors.append(str(exc) if isinstance(exc, DownloadError) else f"{source.url}: {exc}")
                stream.write(f"  failed: {errors[-1]}\n")
        else:
            raise DownloadError(f"{entry.path}: no source worked:\n  " + "\n  ".join(errors))
    shutil.rmtree(partial, ignore_errors=True)
    return report


def import_from(source_dir: Path, models_dir: Path, entries: list[FileEntry]) -> list[str]:
    """Copy and verify files a person brought along (the InsightFace layout, flat files, buffalo_l.zip, or
    invisible-watermark's wheel for the watermark)."""
    report = []
    for entry in entries:
        final = models_dir / entry.path
        name = Path(entry.path).name
        found = next((p for p in (source_dir / entry.path, source_dir / name) if p.is_file()), None)
        archives = sorted([*source_dir.glob("*.zip"), *source_dir.glob("*.whl")])  # a wheel is a zip
        if found is None and not archives:
            raise DownloadError(f"{entry.path}: not found in {source_dir} (looked for {entry.path}, {name}, *.zip and *.whl)")
        final.parent.mkdir(parents=True, exist_ok=True)
        candidate = final.with_name(final.name + ".importing")
        if found is not None:
            shutil.copyfile(found, candidate)
            origin = str(found)
        else:
            archive = next((a for a in archives if name in {Path(n).name for n in zipfile.ZipFile(a).namelist()}), None)
            if archive is None:
                raise DownloadError(f"{entry.path}: not in {source_dir} nor in its zip files")
            extract(archive, name, candidate)
            origin = f"{archive}:{name}"
        place(candidate, final, entry, origin)
        report.append(f"{entry.path}: imported from {origin} and verified")
    return report


def verify(models_dir: Path, entries: list[FileEntry]) -> dict[str, str]:
    """Per file: OK, missing, wrong size or hash, or wrong contract (inputs and outputs)."""
    results = {}
    for entry in entries:
        path = models_dir / entry.path
        if not path.is_file():
            results[entry.path] = "missing"
            continue
        problem = mismatch(path, entry) if entry.sha256 else None
        if problem:
            results[entry.path] = f"wrong hash: {problem}"
            continue
        results[entry.path] = contract_problem(path, entry) or "OK"
    return results
