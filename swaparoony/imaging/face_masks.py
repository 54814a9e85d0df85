"""The masks a swapped face is pasted through: the feathered box (always), and the occlusion and region masks that a
face occluder and a face parser give, refined as FaceFusion refines them. Chosen masks multiply (the minimum).

They depend only on the destination face, so the models run once per face when the gallery loads, in the 512-pixel
crop's space (the parser's own size), and every pixel-boost size shares them. A combination of masks is warped into
the face's paste box the first time a request asks for it, then kept with the face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import cv2
import numpy as np

from ..errors import BadRequest
from ..models.face_parser import REGIONS, Labels
from ..types import Mask
from .face_geometry import crop_mask

MASK_TYPES = ("box", "occlusion", "region")
MASK_SIZE = 512
REFINE_SIGMA = 5.0 * MASK_SIZE / 128
"""FaceFusion blurs occlusion and region masks with sigma 5 at inswapper's 128-pixel crop: the same at 512."""
MAX_KEPT = 16
"""Mask combinations kept per face (each is a float mask of the face's paste box, twice: mask and 1 - mask)."""


@dataclass(frozen=True)
class MaskChoice:
    """Which masks a face is pasted through: the box always, the occluder's when asked, and the parser's classes
    kept when asked (None: no region mask)."""

    occlusion: bool = False
    regions: frozenset[int] | None = None

    @classmethod
    def of(cls, types: Sequence[str], regions: Sequence[str] | None = None) -> MaskChoice:
        """From the API's names: mask types (box, occlusion, region) and region names (every region by default)."""
        unknown = sorted(set(types) - set(MASK_TYPES)) + sorted(set(regions or ()) - set(REGIONS))
        if unknown:
            raise BadRequest(f"unknown mask or mask region {unknown}; masks: {', '.join(MASK_TYPES)}; regions: "
                             f"{', '.join(REGIONS)}")
        kept = frozenset(REGIONS[name] for name in (REGIONS if regions is None else regions))
        return cls("occlusion" in types, kept if "region" in types else None)

    @property
    def described(self) -> list[str]:
        """The mask types chosen, as the API names them."""
        return ["box"] + ["occlusion"] * self.occlusion + ["region"] * (self.regions is not None)


BOX = MaskChoice()


def refined(mask: Mask) -> Mask:
    """A model's mask as FaceFusion pastes through it: blurred, then everything below half dropped and the rest
    stretched to [0, 1], so what the model left out stays out entirely and the edge inside is soft."""
    blurred = cv2.GaussianBlur(np.clip(mask, 0.0, 1.0), (0, 0), REFINE_SIGMA)
    return cast(Mask, ((np.clip(blurred, 0.5, 1.0) - 0.5) * 2.0).astype(np.float32))


def region_mask(labels: Labels, classes: frozenset[int]) -> Mask:
    """1 where the parser found one of these classes, refined, at MASK_SIZE."""
    inside = np.isin(labels, sorted(classes)).astype(np.float32)
    if inside.shape[0] != MASK_SIZE:
        inside = cast(np.ndarray, cv2.resize(inside, (MASK_SIZE, MASK_SIZE)))
    return refined(cast(Mask, inside))


def occlusion_mask(visible: Mask) -> Mask:
    """The occluder's visibility (1: face shows), resized to MASK_SIZE and refined."""
    return refined(cast(Mask, cv2.resize(visible, (MASK_SIZE, MASK_SIZE))))


@dataclass(frozen=True)
class FaceMasks:
    """What the parser and occluder said about one destination face (None: that model is not loaded), and the
    combinations asked for so far, warped into the face's paste box."""

    labels: Labels | None = None
    occlusion: Mask | None = None
    kept: dict[tuple[MaskChoice, int, int], tuple[Mask, Mask]] = field(default_factory=dict, compare=False, repr=False)

    def crop_mask(self, choice: MaskChoice) -> Mask:
        """The chosen masks' minimum in the 512 crop's space."""
        mask = crop_mask(MASK_SIZE)
        if choice.occlusion and self.occlusion is not None:
            mask = np.minimum(mask, occlusion_mask(self.occlusion))
        if choice.regions is not None and self.labels is not None:
            mask = np.minimum(mask, region_mask(self.labels, choice.regions))
        return mask

    def in_box(self, choice: MaskChoice, to_box: np.ndarray, width: int, height: int) -> tuple[Mask, Mask]:
        """The chosen masks warped into a paste box (to_box: the 512 crop's crop-to-box warp), and 1 minus them."""
        key = (choice, width, height)
        if key not in self.kept:
            warped = cast(Mask, cv2.warpAffine(self.crop_mask(choice), to_box, (width, height), flags=cv2.INTER_LINEAR,
                                               borderValue=0.0))
            if len(self.kept) >= MAX_KEPT:
                self.kept.pop(next(iter(self.kept)))
            self.kept[key] = (warped, 1.0 - warped)
        return self.kept[key]
