"""`swaparoony models pull|import|verify|list`: get the model files into a models directory, checked (`--with KEY`
adds an optional one: an enhancer, a face parser, an occluder);
`swaparoony inspect FILE`: what a picture's content credentials and watermark say."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

import c2pa
from PIL import UnidentifiedImageError

from .errors import DownloadError
from .models.download import import_from, manifest, optional_specs, pull, verify
from .models.registry import optional_files, service_files
from .models.specs import licences
from .models import rivagan
from .provenance import credentials_report
from .provenance.watermark import Reading
from .settings import DEFAULT_MODELS_DIR, Settings

ACCEPT_VARIABLE = "SWAPAROONY_ACCEPT_MODEL_LICENCE"
INSPECT_EXIT_CODES = """exit status:
  0  Swaparoony's Content Credentials (signature and hashes hold) and its IPTC XMP are in the file
  1  no mark of Swaparoony found (no credentials; no watermark, or the watermark reader is not installed)
  2  the file cannot be read as an image
  3  Swaparoony's watermark is in the pixels but the credentials are not in the file (stripped or re-saved)"""
INSTALLED_HOOKS = "swaparoony.models_installed"
"""Entry-point group called with the models directory after pull or import (BentoML's store registers one)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swaparoony", description="Swaparoony face-swap service tools.")
    commands = parser.add_subparsers(dest="group", required=True)
    models = commands.add_parser("models", help="download, import and verify the model files")
    actions = models.add_subparsers(dest="action", required=True)
    for name, help_text in (("pull", "download the files from known mirrors, resuming and verifying"),
                            ("import", "copy and verify files you brought (air-gapped clusters)"),
                            ("verify", "check each file: OK, wrong hash, wrong contract or missing"),
                            ("ensure", "download the files that are missing, once the licence is accepted "
                                       "(make serve runs this; SWAPAROONY_ACCEPT_MODEL_LICENCE=1 accepts it)"),
                            ("list", "the optional models (enhancers, face parsers, occluders): licence and whether installed")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("--models-dir", type=Path, default=Settings.from_env().models_dir or DEFAULT_MODELS_DIR,
                            help="where the files go (default: SWAPAROONY_MODELS_DIR or ./models)")
        action.add_argument("--manifest", type=Path, default=os.environ.get("SWAPAROONY_MODELS_MANIFEST"),
                            help="a JSON list of files, sizes, hashes and sources instead of the built-in one")
        if name != "list":
            action.add_argument("--with", dest="extras", action="append", default=[], metavar="KEY[,KEY]",
                                help="an optional model too (repeat or comma-separate): "
                                     + ", ".join(spec.key for spec in optional_files()))
        if name not in ("verify", "list"):
            action.add_argument("--no-store", action="store_true",
                                help="do not also save the files in BentoML's model store")
        if name == "import":
            action.add_argument("--from", dest="source", type=Path, required=True, help="folder holding the files or buffalo_l.zip")
    inspect = commands.add_parser("inspect", help="whether a picture carries Swaparoony's content credentials and "
                                  "watermark, and what they say", epilog=INSPECT_EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--trust", type=Path, help="PEM CA certificate(s) to trust, e.g. the service's signing-chain.pem")
    inspect.add_argument("--models-dir", type=Path, default=Settings.from_env().models_dir or DEFAULT_MODELS_DIR,
                         help="where the watermark reader (rivagan_decoder.onnx) is (default: SWAPAROONY_MODELS_DIR "
                              "or ./models)")
    return parser


def inspect(file: Path, trust: Path | None, models_dir: Path) -> int:
    """Print what the file says about itself, its metadata and its pixels; the exit status is INSPECT_EXIT_CODES'."""
    try:
        report = credentials_report.read(file, trust.read_bytes() if trust else None)
        watermark = _watermark(file, models_dir)
    except UnidentifiedImageError:
        print(f"error: {file} is not an image file", file=sys.stderr)
        return 2
    except (OSError, c2pa.C2paError) as exc:
        print(f"error: cannot inspect {file}: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    print(watermark.line() if isinstance(watermark, Reading) else f"watermark: not checked: {watermark}")
    if report.from_swaparoony and report.xmp_source_type:
        return 0
    if isinstance(watermark, Reading) and watermark.found:
        print("Swaparoony watermark found; no Content Credentials (stripped or re-saved)")
        return 3
    return 1


def _watermark(file: Path, models_dir: Path) -> Reading | str:
    """The watermark's reading, or why it could not be read."""
    try:
        return rivagan.read(file, models_dir)
    except FileNotFoundError as exc:
        return str(exc)


def list_optional(models_dir: Path) -> int:
    """Print each optional model: its key, file, whether it is installed, and its licence."""
    for spec in optional_files():
        state = "installed" if (models_dir / spec.relative_path).is_file() else "not installed"
        print(f"{spec.role:<14} {spec.key:<24} {spec.relative_path:<30} {state:<14} {spec.licence}")
    print(f"Install one with: swaparoony models pull --with KEY (into {models_dir})")
    return 0


def licence_accepted(licence: str) -> bool:
    """The person accepts the model licence: SWAPAROONY_ACCEPT_MODEL_LICENCE=1, or 'y' at a terminal."""
    print(f"The model files are missing. Licence: {licence}", file=sys.stderr)
    if os.environ.get(ACCEPT_VARIABLE) == "1":
        return True
    if sys.stdin.isatty():
        return input("Download them and accept this licence? [y/N] ").strip().lower() in ("y", "yes")
    print(f"Not downloading: set {ACCEPT_VARIABLE}=1 to accept the licence, or run `swaparoony models pull` "
          "(or `models import` for files you brought).", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    """Run a command; exit status 0 on success, 1 with a message on failure."""
    args = build_parser().parse_args(argv)
    if args.group == "inspect":
        return inspect(args.file, args.trust, args.models_dir)
    if args.action == "list":
        return list_optional(args.models_dir)
    detector = Settings.from_env().detector
    extras = [key.strip() for given in args.extras for key in given.split(",") if key.strip()]
    try:
        entries = manifest(Path(args.manifest) if args.manifest else None, detector, extras)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    licence = licences([*service_files({"detector": detector}), *optional_specs(extras)])
    if args.action == "ensure":
        if all((args.models_dir / entry.path).is_file() for entry in entries):
            print(f"model files in place in {args.models_dir}")
            return 0
        if not licence_accepted(licence):
            return 1
    try:
        if args.action in ("pull", "ensure"):
            print(f"Licence: {licence}", file=sys.stderr)
            lines = pull(args.models_dir, entries)
        elif args.action == "import":
            lines = import_from(args.source, args.models_dir, entries)
        else:
            results = verify(args.models_dir, entries)
            for path, verdict in results.items():
                print(f"{path}: {verdict}")
            return 0 if all(v == "OK" for v in results.values()) else 1
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.no_store:
        for hook in entry_points(group=INSTALLED_HOOKS):
            try:
                lines.append(hook.load()(args.models_dir))
            except Exception as exc:  # the files are in place either way; say why the extra step failed
                lines.append(f"not saved by {hook.name}: {exc}")
    for line in lines:
        print(line)
    return 0
