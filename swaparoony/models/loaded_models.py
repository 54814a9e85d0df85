"""The models a service loaded, by role: opened once, each checked by its contract, and counted as they run."""

from __future__ import annotations

import ctypes
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import onnxruntime as ort

from ..telemetry import ModelTelemetry, NoModelTelemetry
from .batch_axis import batched_or_original, free_batch_copy
from .cache import ModelCache
from .family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from .onnx_loader import CUDA, default_providers, open_session, parsed, require_files, warn_if_not_release
from .registry import FAMILIES, Choices, service_files
from .specs import ModelSpec

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)
Rebatch = Literal["auto", "on", "off"]
Model = TypeVar("Model", bound=BatchedModel[Any, Any])


def model_name(spec: ModelSpec) -> str:
    """What a loaded file is called by its callers: its role, or role:key where a role loads every file present (the
    enhancers, each a per-request choice)."""
    return f"{spec.role}:{spec.key}" if FAMILIES[spec.role].when_present == "every" else spec.role


class LoadedModels:
    """One BatchedModel per role (per file, for a role that loads several), counting model runs (items, and session
    calls) for tests, benchmarks and /metrics."""

    def __init__(self, roles: dict[str, BatchedModel[Any, Any]], telemetry: ModelTelemetry | None = None) -> None:
        self.roles = roles
        self.runs: Counter[str] = Counter()
        self.telemetry = telemetry or NoModelTelemetry()
        for model in roles.values():
            model.count = self._ran

    @classmethod
    def load(cls, models_dir: Path, providers: tuple[str, ...] | None = None, options: RunOptions = RunOptions(),
             choices: Choices | None = None, rebatch: Rebatch = "auto", cache: ModelCache | None = None, device_id: int = 0) -> LoadedModels:
        """Open every role's chosen file under models_dir, and the optional ones present there (on GPU device_id when
        CUDA is chosen), each checked by its contract.

        rebatch: whether a batch-1 model gets a free-batch copy (auto: on CUDA, where batches pay; on CPU a
        batch costs what its items cost, and the check would cost seconds of start-up).
        """
        specs = service_files(choices, models_dir)
        require_files(models_dir, specs)
        chosen = providers or default_providers()
        if CUDA in chosen and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA and cuDNN from NVIDIA's pip wheels (onnxruntime-gpu[cuda,cudnn])
        logger.info("loading models from %s with providers %s%s", models_dir.resolve(), list(chosen),
                    f" on GPU {device_id}" if CUDA in chosen else "")
        batches = rebatch == "on" or (rebatch == "auto" and CUDA in chosen)
        cache = cache or ModelCache(None)
        opened = [_opened(models_dir / spec.relative_path, spec, FAMILIES[spec.role], chosen, batches, cache, device_id)
                  for spec in specs]
        _return_freed_memory()
        return cls({model_name(model.spec): FAMILIES[model.spec.role].build(model, options) for model in opened})

    def of(self, kind: type[Model]) -> Model:
        """The loaded model of this family's class (the pipeline's typed way to a role)."""
        found = [model for model in self.roles.values() if isinstance(model, kind)]
        if not found:
            raise LookupError(f"no {kind.__name__} is loaded; roles: {sorted(self.roles)}")
        return found[0]

    def named(self, name: str) -> BatchedModel[Any, Any]:
        """The model loaded under this name (model_name: a role, or role:key)."""
        model = self.roles.get(name)
        if model is None:
            raise LookupError(f"no model is loaded as {name!r}; loaded: {sorted(self.roles)}")
        return model

    def run(self, name: str, items: list[Any]) -> list[Any]:
        """One answer per item from the named model (a role, or role:key), the batch run as its family runs every
        batch."""
        return self.named(name)(items)

    def files(self) -> dict[str, list[str]]:
        """The file keys loaded for each role: what the API may offer."""
        loaded: dict[str, list[str]] = {}
        for model in self.roles.values():
            loaded.setdefault(model.spec.role, []).append(model.spec.key)
        return loaded

    def _ran(self, role: str, items: int, calls: int) -> None:
        self.runs[role] += items
        self.telemetry.model_run(role, items, calls)

    @property
    def providers(self) -> dict[str, list[str]]:
        """The providers each session actually runs on."""
        return {role: model.session.get_providers() for role, model in self.roles.items()}

    @property
    def batching(self) -> dict[str, bool]:
        """Whether each model runs a batch as one call."""
        return {role: model.layout.batch_free for role, model in self.roles.items()}


def _opened(path: Path, spec: ModelSpec, family: ModelFamily, providers: tuple[str, ...], batches: bool,
            cache: ModelCache, device_id: int) -> OpenedModel:
    """One file's session (its checked free-batch copy where batches pay and its axis is fixed), and its trailing
    initializer when the spec asks for one: from the one parse the copy needs, from the cache, or parsed once."""
    warn_if_not_release(path, spec, cache.sha256)
    session, layout = open_session(path, spec, providers, family.find_outputs, device_id=device_id)
    graph = parsed(path) if batches and not layout.batch_free else None  # the one parse, if any
    initializer = cache.emap(path, spec, graph) if spec.trailing_initializer_shape else None
    if graph is not None:
        copy = free_batch_copy(graph).SerializeToString()
        del graph  # one 554 MB copy of inswapper in Python at a time, not two
        session, layout = batched_or_original(path, spec, family.find_outputs, providers, (session, layout), copy,
                                              device_id)
        del copy
    return OpenedModel(session, layout, spec, initializer)


def _return_freed_memory() -> None:
    """Hand the parse and the copies back to the system: glibc keeps freed heap for reuse, and the model
    service's resident memory would otherwise stay about 700 MB higher for its whole life after re-batching."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
