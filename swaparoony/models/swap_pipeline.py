"""A model call's swaps over the loaded roles: embed the sources, swap every tile, finish the crops, re-embed them.

Three batches for all the requests of a call, whatever their number: one embedding of every source face, one swap
of every tile of every target (a 128 crop is one tile, 256 four, 512 sixteen), one embedding of every result; a
family that finishes swaps (a face enhancer) adds one batch of every crop.
"""

from __future__ import annotations

import numpy as np

from ..imaging.color_match import match_color
from ..imaging.face_geometry import arcface_view, blend, crop_mask
from ..types import FaceSwapRequest, FaceSwapResult, Frame, SwapItem
from .arcface import FaceRecognizer
from .inswapper import FaceSwapper
from .loaded_models import LoadedModels
from .pixel_boost import factor, tiles, untiled


def swap_faces(models: LoadedModels, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]:
    """Each request's source faces swapped into their targets, and how well each identity came through."""
    recognizer, swapper = models.of(FaceRecognizer), models.of(FaceSwapper)
    identities = recognizer([source for request in requests for source in request.sources])
    latents = swapper.latents(identities)
    firsts = np.cumsum([0] + [len(request.sources) for request in requests])
    sources = [[int(first + pair) for pair in request.pairs] for request, first in zip(requests, firsts)]
    items = [SwapItem(tile, latents[source]) for request, chosen in zip(requests, sources)
             for target, source in zip(request.targets, chosen) for tile in tiles(target)]
    swapped = iter(swapper(items))
    crops = [untiled(np.stack([next(swapped) for _ in range(factor(target.shape[0]) ** 2)]))
             for request in requests for target in request.targets]
    for finisher in models.finishers():
        crops = finisher(crops)
    finished = iter(crops)
    done = [[_color_matched(next(finished), target, request.color_match) for target in request.targets]
            for request in requests]
    results = recognizer([arcface_view(blend(crop, target, crop_mask(target.shape[0])))
                          for request, crops_of in zip(requests, done) for crop, target in zip(crops_of, request.targets)])
    wanted = [identities[s] for chosen in sources for s in chosen]
    similarity = iter(np.sum(np.stack(results) * np.stack(wanted), axis=1).tolist() if results else [])
    return [FaceSwapResult(crops_of, [next(similarity) for _ in crops_of]) for crops_of in done]


def _color_matched(crop: Frame, target: Frame, color_match: bool) -> Frame:
    return match_color(crop, target, crop_mask(target.shape[0])) if color_match else crop
