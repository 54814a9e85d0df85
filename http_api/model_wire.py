"""What crosses from the API service to the model service and back."""

from __future__ import annotations

import numpy as np
from bentoml import IODescriptor


class FaceSwapBatchItem(IODescriptor):
    """One request's model work as it crosses from the API service to the model service (pickled, not JSON):
    the aligned source faces and the destination crops, stacked, and which source goes into each crop."""

    sources: np.ndarray
    targets: np.ndarray
    pairs: list[int]
    colour_match: bool = False


class FaceSwapBatchOut(IODescriptor):
    """One request's swapped crops, stacked, and each one's identity similarity to its source face."""

    crops: np.ndarray
    similarity: list[float]
