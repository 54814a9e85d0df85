"""What a gallery reload costs: a poll that finds nothing, one portrait added, one replaced, one removed.

In-process engine on the small generated models, a gallery of --count 1280x1280 portraits; medians of
--runs. The poll that finds nothing is what the service pays every SWAPAROONY_GALLERY_POLL_S.

    python benchmarks/reload.py [--count 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
from _fixtures import draw_faces, gallery, write_models
from _pipelines import LOOP

from swaparoony.engine import SwapEngine
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.model_calls import LocalModelCalls
from swaparoony.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        directory = gallery(work / "destinations", count=args.count)
        settings = Settings(destinations_dir=directory, state_dir=work / "state")
        engine = LOOP.run_until_complete(SwapEngine.start(LocalModelCalls(LoadedModels.load(write_models(work / "m"))), settings))
        portrait = draw_faces((1280, 1280), [(320, 640), (896, 640)], scale=2.0)
        times: dict[str, list[float]] = {"nothing changed": [], "one added": [], "one replaced": [], "one removed": []}

        def timed(label: str) -> None:
            start = time.perf_counter()
            changed = LOOP.run_until_complete(engine.live.reload())
            times[label].append(time.perf_counter() - start)
            assert changed == (label != "nothing changed"), label

        for run in range(args.runs):
            timed("nothing changed")
            cv2.imwrite(str(directory / f"added_{run}.png"), portrait)
            timed("one added")
            cv2.imwrite(str(directory / f"added_{run}.png"), cv2.flip(portrait, 1))
            timed("one replaced")
            (directory / f"added_{run}.png").unlink()
            timed("one removed")
        engine.close()
    print(f"gallery of {args.count} portraits of 1280x1280, small models, {args.runs} runs, medians")
    for label, values in times.items():
        print(f"  {label:<16} {statistics.median(values) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
