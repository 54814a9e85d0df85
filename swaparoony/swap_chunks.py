"""A request's model work in bounded chunks: the model service's memory follows a chunk, not the request.

One call for the whole request made the model service hold every tile, latent and result of it at once (about
1.1 MiB a swap: a 512-swap request took it 570 MiB up on generated models, 16 of them at once 4.8 GiB), and a
request cancelled by its deadline could not take back the call it had sent. Sent a chunk at a time, a request holds
one chunk there (the same request: 55 MiB), and once its task is cancelled no further chunk goes out (the one
already sent finishes). benchmarks/work_budget.py measures this.
"""

from __future__ import annotations

import dataclasses

from .models.pixel_boost import factor
from .types import FaceSwapRequest, FaceSwapResult

CHUNK_SWAPS = 64
"""Swaps per model call at most. Every booth request up to 8 portraits x 4 faces at pixel_boost 128, or x 1 face
at 256, is one call as before; the largest (8 x 4 at 512, 512 swaps) is 8 calls, and took about as long on 2 CPUs.
64 tiles still make a full batch for a GPU (64 x 175 GFLOPs of inswapper); a chunk costs the model service about
70 MiB; a request cut by its deadline leaves at most one chunk running (on a CPU, 64 real inswapper swaps are about
a minute of 2 cores, so an operator on CPUs may lower max_active_swaps, which caps the chunk). Never more than the
worker's max_active_swaps, or a chunk could not be admitted."""


def swaps(request: FaceSwapRequest) -> int:
    """The swaps a model call costs: its targets times the tiles each is swapped as."""
    return sum(factor(target.shape[0]) ** 2 for target in request.targets)


def chunked(request: FaceSwapRequest, chunk_swaps: int) -> list[FaceSwapRequest]:
    """The request as calls of at most chunk_swaps swaps (at least one face each), targets in order; each call
    carries only the upload faces its targets use. A request that fits comes back as itself: one call."""
    if not request.targets or swaps(request) <= chunk_swaps:
        return [request]
    faces = max(1, chunk_swaps // (factor(request.targets[0].shape[0]) ** 2))  # one crop size per request
    return [_part(request, start, start + faces) for start in range(0, len(request.targets), faces)]


def joined(results: list[FaceSwapResult]) -> FaceSwapResult:
    """The chunks' answers as one, in the order the chunks were made."""
    return FaceSwapResult([crop for result in results for crop in result.crops],
                          [score for result in results for score in result.similarity])


def _part(request: FaceSwapRequest, start: int, stop: int) -> FaceSwapRequest:
    """Targets start:stop with the sources they use, re-indexed: each chunk embeds its few sources again, which
    costs one recognizer item per source (the latents stay in the model service, so they cannot be reused)."""
    pairs = request.pairs[start:stop]
    used = sorted(set(pairs))
    enhancement = request.enhancement and dataclasses.replace(
        request.enhancement, faces=request.enhancement.faces[start:stop], from_crop=request.enhancement.from_crop[start:stop])
    return FaceSwapRequest([request.sources[i] for i in used], request.targets[start:stop],
                           [used.index(pair) for pair in pairs], request.color_match, enhancement)
