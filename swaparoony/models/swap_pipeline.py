"""A model call's swaps over the loaded roles: embed the sources, swap every tile, finish the crops, re-embed them.

Three batches for all the requests of a call, whatever their number: one embedding of every source face, one swap
of every tile of every target (a 128 crop is one tile, 256 four, 512 sixteen), one embedding of every result; each
face enhancer the requests chose adds one batch of their crops.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from ..imaging.color_match import match_color
from ..imaging.face_geometry import arcface_view, blend, crop_mask
from ..types import AffineMatrix, FaceSwapRequest, FaceSwapResult, Frame, SwapItem
from .arcface import FaceRecognizer
from .face_enhancer import ENHANCER_SIZE, ENHANCERS, EnhanceItem
from .inswapper import FaceSwapper
from .loaded_models import LoadedModels, model_name
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
    crops = iter([untiled(np.stack([next(swapped) for _ in range(factor(target.shape[0]) ** 2)]))
                  for request in requests for target in request.targets])
    done = [[_color_matched(next(crops), target, request.color_match) for target in request.targets]
            for request in requests]
    _enhance(models, requests, done)
    results = recognizer([arcface_view(blend(crop, target, crop_mask(target.shape[0])))
                          for request, crops_of in zip(requests, done) for crop, target in zip(crops_of, request.targets)])
    wanted = [identities[s] for chosen in sources for s in chosen]
    similarity = iter(np.sum(np.stack(results) * np.stack(wanted), axis=1).tolist() if results else [])
    return [FaceSwapResult(crops_of, [next(similarity) for _ in crops_of]) for crops_of in done]


def _color_matched(crop: Frame, target: Frame, color_match: bool) -> Frame:
    return match_color(crop, target, crop_mask(target.shape[0])) if color_match else crop


def _enhance(models: LoadedModels, requests: list[FaceSwapRequest], done: list[list[Frame]]) -> None:
    """Each request's crops restored by its enhancer, in place: one batch per enhancer chosen, over all requests.

    A swapped crop is placed in its face's enhancer view as paste-back would place it in the frame, the view is
    restored, and the restored face is warped back to the crop and blended over it by the request's blend."""
    jobs = [(crops, request.enhancement) for crops, request in zip(done, requests) if request.enhancement is not None]
    for key in dict.fromkeys(enhancement.enhancer for _, enhancement in jobs):
        mine = [(crops, enhancement) for crops, enhancement in jobs if enhancement.enhancer == key]
        items = [EnhanceItem(_in_view(crop, face, matrix), enhancement.weight) for crops, enhancement in mine
                 for crop, face, matrix in zip(crops, enhancement.faces, enhancement.from_crop)]
        restored = iter(models.run(model_name(ENHANCERS[key]), items))
        for crops, enhancement in mine:
            for index, matrix in enumerate(enhancement.from_crop):
                crops[index] = _blended_back(crops[index], next(restored), matrix, enhancement.blend)


def _in_view(crop: Frame, face: Frame, from_crop: AffineMatrix) -> Frame:
    """The swapped crop over the enhancer's view of its destination face, through the swap's box mask."""
    size = (ENHANCER_SIZE, ENHANCER_SIZE)
    warped = cv2.warpAffine(crop, from_crop, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(crop_mask(crop.shape[0]), from_crop, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    return cast(Frame, cv2.blendLinear(warped, face, mask, 1.0 - mask))


def _blended_back(crop: Frame, restored: Frame, from_crop: AffineMatrix, blend_by: float) -> Frame:
    """The restored face warped back to the crop and blended over it; the crop itself where blend_by is 0."""
    if blend_by <= 0.0:
        return crop
    back = cv2.warpAffine(restored, cv2.invertAffineTransform(from_crop), (crop.shape[1], crop.shape[0]),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cast(Frame, cv2.addWeighted(back, blend_by, crop, 1.0 - blend_by, 0.0))
