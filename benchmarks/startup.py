"""Model start-up: seconds and memory to load the three models, before and after, in fresh processes.

Cost-faithful generated models (the swapper file is about the real 554 MB), loaded as the model service
loads them: cold (nothing cached) and warm (hashes and emap cached in the state directory), item by item
and re-batched. --repo adds an older checkout, loaded the same way, for a side-by-side in one run.

    python benchmarks/startup.py [--repo /path/to/old/checkout] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _fixtures import REPO, write_models

LOAD = """
import inspect, json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
try:
    from swaparoony.models.loaded_models import LoadedModels as Models
except ImportError:  # a tree from before the model families (--repo)
    from swaparoony.models.model_set import ModelSet as Models
models, state, rebatch = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
params, kwargs = inspect.signature(Models.load).parameters, {}
if "threshold" in params:
    kwargs["threshold"] = 0.5
if "cache" in params:
    from swaparoony.models.cache import ModelCache
    kwargs["cache"] = ModelCache(state)
if "rebatch" in params:
    kwargs["rebatch"] = rebatch
started = time.perf_counter()
loaded = Models.load(models, None, **kwargs)
seconds = time.perf_counter() - started
rss = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
batching = getattr(loaded, "batching", {})
print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_mib": rss, "swapper_batched": batching.get("swapper", False)}))
"""


def load_once(repo: Path, models: Path, state: Path, rebatch: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}
    out = subprocess.run([sys.executable, "-c", LOAD, str(repo), str(models), str(state), rebatch],
                         capture_output=True, text=True, check=True, env={k: v for k, v in env.items() if v})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, help="an older checkout to compare with")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="swaparoony-startup-") as tmp:
        models = write_models(Path(tmp) / "models", cost_faithful=True)
        size = sum(f.stat().st_size for f in models.rglob("*.onnx")) / 2**20
        cases = [(f"before ({args.repo.name})", args.repo, "off", "cold")] if args.repo else []
        cases += [("now, item by item", REPO, "off", "cold"), ("now, item by item", REPO, "off", "warm"),
                  ("now, re-batched", REPO, "on", "cold"), ("now, re-batched", REPO, "on", "warm")]
        results: dict[tuple[str, str], list[dict]] = {(c[0], c[3]): [] for c in cases}
        for run in range(args.runs):  # alternating, so drift on a shared machine hits every case alike
            for label, repo, rebatch, cache in cases:
                state = Path(tmp) / f"state-{label}-{run}"
                if cache == "warm":
                    load_once(repo, models, state, rebatch)  # fills the cache
                results[(label, cache)].append(load_once(repo, models, state, rebatch))
    print(f"cost-faithful generated models, {size:.0f} MiB of files; {args.runs} fresh processes each, medians")
    print(f"{'case':<28}{'cache':<7}{'seconds':>8}{'peak MiB':>10}{'RSS MiB':>9}  swapper batched")
    for (label, cache), runs in results.items():
        median = {key: statistics.median(r[key] for r in runs) for key in ("seconds", "peak_mib", "rss_mib")}
        print(f"{label:<28}{cache if 'before' not in label else '-':<7}{median['seconds']:>8.2f}"
              f"{median['peak_mib']:>10.0f}{median['rss_mib']:>9.0f}  {runs[0]['swapper_batched']}")


if __name__ == "__main__":
    main()
