"""What content credentials cost: per picture on real photos, and per request and in throughput through the engine.

Per picture: real photos (scikit-image's astronaut and insightface's t1.jpg, scaled to a 1280-pixel
portrait), encoded as the service encodes them, then marked (IPTC XMP plus a signed C2PA manifest,
the destination as parent ingredient). Per request: the engine in-process on the generated models,
four 1280x1280 destinations, JPEG out, with the marks on and off in alternating runs.

    python benchmarks/credentials.py [--runs 15] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import insightface
import skimage.data
from _fixtures import gallery, upload, write_models
from _pipelines import LOOP, ours

from swaparoony import __version__
from swaparoony.provenance import signing_identity
from swaparoony.provenance.content_credentials import ContentCredentials, Provenance, Unmarked
from swaparoony.engine import SWAPPED, SwapOptions
from swaparoony.imaging.vision import MEDIA_TYPES, encode_image


def photos() -> dict[str, cv2.typing.MatLike]:
    """Real photos scaled to a 1280-pixel long side, as destination portraits usually are."""
    t1 = cv2.imread(str(Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"))
    astronaut = skimage.data.astronaut()[..., ::-1]
    return {
        "astronaut 1280x1280": cv2.resize(astronaut, (1280, 1280), interpolation=cv2.INTER_CUBIC),
        "t1 1280x886": t1,
    }


def per_picture(marker: ContentCredentials, runs: int) -> None:
    print(f"{'photo':<22}{'format':<7}{'encode ms':>10}{'mark ms':>9}{'bytes':>11}{'+bytes':>8}{'+%':>7}")
    for name, frame in photos().items():
        parent = marker.parent("portrait.png", encode_image(frame, "png", 90), "image/png")
        for output_format in ("jpeg", "png", "webp"):
            encode_s, mark_s = [], []
            for _ in range(runs):
                start = time.perf_counter()
                data = encode_image(frame, output_format, 90)
                encode_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                marked = marker.mark(data, MEDIA_TYPES[output_format], Provenance(SWAPPED, parent))
                mark_s.append(time.perf_counter() - start)
            extra = len(marked) - len(data)
            print(f"{name:<22}{output_format:<7}{statistics.median(encode_s) * 1e3:>10.1f}"
                  f"{statistics.median(mark_s) * 1e3:>9.1f}{len(data):>11,}{extra:>8,}{100 * extra / len(data):>7.2f}")


def per_request(marker: ContentCredentials, runs: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine, _ = ours(write_models(Path(tmp) / "models"), gallery(Path(tmp) / "destinations", count=4))
        selfie, options = upload(), SwapOptions(output_format="jpeg")
        markers = {"marks off": Unmarked(), "marks on": marker}

        def one(chosen: str) -> float:
            engine.marker = markers[chosen]
            start = time.perf_counter()
            LOOP.run_until_complete(engine.swap(selfie, options))
            return time.perf_counter() - start

        def burst(chosen: str) -> float:
            engine.marker = markers[chosen]

            async def many() -> None:
                await asyncio.gather(*(engine.swap(selfie, options) for _ in range(concurrency)))

            start = time.perf_counter()
            LOOP.run_until_complete(many())
            return concurrency / (time.perf_counter() - start)

        for chosen in markers:  # warm-up
            one(chosen)
        latency: dict[str, list[float]] = {name: [] for name in markers}
        throughput: dict[str, list[float]] = {name: [] for name in markers}
        for _ in range(runs):
            for chosen in markers:  # alternating, so drift on a shared machine hits both alike
                latency[chosen].append(one(chosen))
                throughput[chosen].append(burst(chosen))
        engine.close()
    off, on = (statistics.median(latency[n]) for n in markers)
    rps_off, rps_on = (statistics.median(throughput[n]) for n in markers)
    print(f"\none /swap into 4 destinations, JPEG, generated models ({runs} alternating runs, medians)")
    print(f"  latency   marks off {off * 1e3:7.1f} ms   marks on {on * 1e3:7.1f} ms   on/off {on / off:.3f}")
    print(f"  {concurrency} at once  marks off {rps_off:7.1f} req/s  marks on {rps_on:7.1f} req/s  on/off {rps_on / rps_off:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        marker = ContentCredentials(signing_identity.local(Path(state)), __version__)
        per_picture(marker, args.runs)
        per_request(marker, args.runs, args.concurrency)


if __name__ == "__main__":
    main()
