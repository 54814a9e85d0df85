"""The optional models a request may ask for (a face enhancer, the occlusion and region masks), by what the model
service loaded: an option whose file is missing is refused before any model call, naming the file and how to get it,
never swapped without it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import BadRequest, ModelNotInstalled
from .gallery.index import DestinationInfo
from .imaging.face_masks import BOX, MaskChoice
from .models import face_enhancer, face_occluder, face_parser
from .models.model_calls import Loaded
from .models.specs import ModelSpec
from .swap_plan import SwapOptions

MASK_MODELS = {"occlusion": face_occluder.FAMILY, "region": face_parser.FAMILY}
"""The family each model-made mask type needs one file of."""


@dataclass(frozen=True)
class OfferedModels:
    """The optional models loaded: enhancers by key, and whether a face parser and occluder are there."""

    enhancers: tuple[str, ...] = ()
    masks: tuple[str, ...] = ("box",)

    @classmethod
    def of(cls, loaded: Loaded) -> OfferedModels:
        """From the model service's loaded files by role."""
        masks = ("box",) + tuple(kind for kind, family in MASK_MODELS.items() if loaded.get(family.role))
        return cls(tuple(loaded.get(face_enhancer.ROLE, ())), masks)

    def check(self, options: SwapOptions) -> None:
        """ModelNotInstalled (or BadRequest for a name no family has) when the options need a file not loaded."""
        if options.enhancer is not None and options.enhancer not in self.enhancers:
            spec = face_enhancer.ENHANCERS.get(options.enhancer)
            if spec is None:
                raise BadRequest(f"enhancer={options.enhancer!r} is not an enhancer; known: "
                                 f"{', '.join(face_enhancer.ENHANCERS)}")
            raise ModelNotInstalled(_missing(f"enhancer={spec.key}", [spec]))
        for kind in options.mask or ():
            if kind in MASK_MODELS and kind not in self.masks:
                raise ModelNotInstalled(_missing(f"mask={kind}", list(MASK_MODELS[kind].files.values())))
        if options.mask is not None or options.mask_regions is not None:
            MaskChoice.of(options.mask or (), options.mask_regions)  # names checked, whichever portrait is used

    def mask_choice(self, options: SwapOptions, info: DestinationInfo) -> MaskChoice:
        """The request's masks, else the portrait's default from gallery.json (less any model not loaded), else box."""
        if options.mask is not None:
            return MaskChoice.of(options.mask, options.mask_regions)
        if info.mask is None:
            return BOX
        return MaskChoice.of([kind for kind in info.mask if kind in self.masks],
                             options.mask_regions if options.mask_regions is not None else info.mask_regions)


def _missing(option: str, specs: Sequence[ModelSpec]) -> str:
    files = " or ".join(spec.relative_path for spec in specs)
    return (f"{option} needs the model file {files} in the models directory, and the service did not load one at "
            f"start. Get it with `swaparoony models pull --with {specs[0].key}` (licence: {specs[0].licence}) and "
            "restart the service.")
