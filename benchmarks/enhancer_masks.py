"""What a request costs with each mask and each enhancer against the plain swap, through the real server.

One /swap_image into a 1280x1280 portrait with one face, per variant: mask=box (the plain swap), mask=region,
mask=occlusion, both, and each enhancer at blend 80 with the box mask. The parser and occluder run when the gallery
loads (their cost is printed as the gallery's load time with and without them), so a masked request should cost what a
plain one does. The enhancers are generated files with the real contract ([1,3,512,512] in and out) but almost no
compute: their rows measure what the service adds around an enhancer (the 512 px view, the warp back, the blend and
paste), not the network itself, which on a real GFPGAN or CodeFormer is the larger part on a CPU.

    python benchmarks/enhancer_masks.py [--cost-faithful] [--requests 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import httpx
from _fixtures import draw_faces, start_server, stop_server, upload, write_models
from generated_models import write_optional_models

VARIANTS: dict[str, dict[str, str]] = {
    "plain (mask=box)": {"mask": "box"},
    "mask=region": {"mask": "region"},
    "mask=occlusion": {"mask": "occlusion"},
    "mask=occlusion,region": {"mask": "occlusion,region"},
    "enhancer=gfpgan_1.4": {"mask": "box", "enhancer": "gfpgan_1.4"},
    "enhancer=restoreformer_plus_plus": {"mask": "box", "enhancer": "restoreformer_plus_plus"},
    "enhancer=codeformer": {"mask": "box", "enhancer": "codeformer"},
    "enhancer=gpen_bfr_512": {"mask": "box", "enhancer": "gpen_bfr_512"},
}
ENHANCERS = ("gfpgan_1.4", "restoreformer_plus_plus", "codeformer", "gpen_bfr_512")


def serve(work: Path, models: Path, gallery: Path) -> tuple[object, float]:
    started = time.perf_counter()
    server = start_server(work, {"SWAPAROONY_MODELS_DIR": str(models), "SWAPAROONY_DESTINATIONS_DIR": str(gallery)})
    return server, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost-faithful", action="store_true", help="swap models with the real ones' compute")
    parser.add_argument("--requests", type=int, default=9, help="requests per variant (the median is printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain_models = write_models(root / "plain_models", cost_faithful=args.cost_faithful)
        models = write_optional_models(write_models(root / "models", cost_faithful=args.cost_faithful), ENHANCERS)
        gallery = root / "gallery"
        gallery.mkdir()
        cv2.imwrite(str(gallery / "portrait.png"), draw_faces((1280, 1280), [(640, 640)], scale=2.0))
        (gallery / "gallery.json").write_text(json.dumps({}))
        photo = upload(1)
        server, without = serve(root / "plain_server", plain_models, gallery)
        stop_server(server.process)  # type: ignore[attr-defined]
        server, started = serve(root / "server", models, gallery)
        try:
            print(f"{'cost-faithful' if args.cost_faithful else 'small'} generated swap models; one 1280x1280 portrait, "
                  f"one face; {args.requests} requests per variant, interleaved")
            print(f"start-up to ready: {without:.1f} s without the optional models, {started:.1f} s with them "
                  f"(4 enhancers, a parser and an occluder loaded; the masks computed at gallery load)")
            times: dict[str, list[float]] = {name: [] for name in VARIANTS}
            with httpx.Client(base_url=server.url, timeout=300) as client:  # type: ignore[attr-defined]
                for round_ in range(args.requests + 1):
                    for name, fields in VARIANTS.items():
                        began = time.perf_counter()
                        response = client.post("/swap_image", files={"image": ("me.jpg", photo, "image/jpeg")},
                                               data={"destination": "portrait.png", **fields})
                        response.raise_for_status()
                        if round_:  # the first round warms every path
                            times[name].append(time.perf_counter() - began)
            base = statistics.median(times["plain (mask=box)"])
            print(f"{'variant':<34} {'median ms':>10} {'vs plain':>9} {'added ms':>9}")
            for name, measured in times.items():
                median = statistics.median(measured)
                print(f"{name:<34} {median * 1000:>10.1f} {median / base:>8.2f}x {(median - base) * 1000:>9.1f}")
        finally:
            stop_server(server.process)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
