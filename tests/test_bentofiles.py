"""The three bentofiles (CPU, GPU on CUDA 12, GPU on CUDA 13) differ only in their name and ONNX Runtime lines, and
each GPU line is pinned to the CUDA major the driver check holds it to."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml

from conftest import REPO
from swaparoony.models.nvidia_driver import BENTOFILES

RUNTIME = re.compile(r"^(onnxruntime|nvidia-)")


def bentofile(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / name).read_text())


def runtime_lines(packages: list[str]) -> list[str]:
    return [package for package in packages if RUNTIME.match(package)]


def test_the_bentofiles_differ_only_in_name_and_onnx_runtime() -> None:
    files = {name: bentofile(name) for name in ("bentofile.cpu.yaml", *BENTOFILES.values())}
    for data in files.values():
        data["python"]["packages"] = [package for package in data["python"]["packages"] if not RUNTIME.match(package)]
        data.pop("name")
    for name, data in files.items():
        assert data == files["bentofile.yaml"], name


def test_each_gpu_line_is_pinned_to_its_cuda_major() -> None:
    for major, name in BENTOFILES.items():
        lines = runtime_lines(bentofile(name)["python"]["packages"])
        assert re.fullmatch(r"onnxruntime-gpu\[cuda,cudnn\]==[\d.]+", lines[0]), name
        assert all(f"<{major + 1}" in line or "cudnn" in line for line in lines[1:]), lines
        assert any(f"cu{major}" in line or f">={major}" in line for line in lines[1:]), lines


def test_the_gpu_extra_installs_the_cuda_12_image_onnx_runtime() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["gpu"] == runtime_lines(bentofile("bentofile.yaml")["python"]["packages"])
