"""Domain errors, each carrying the HTTP status a client should see.

SwaparoonyError
├── BadRequest (400)
│   ├── UndecodableImage
│   └── UnknownDestination (404)
├── UploadTooLarge (413)
├── UnsupportedImageFormat (415)
├── DecodeTooCostly (422)
├── NoFaceFound (422)
├── FaceIdOutOfRange (422)
├── TooManySwaps (422)
├── ModelNotInstalled (422)
├── GalleryNotWritable (409)
│   └── GalleryFull
├── SigningFailed (500)
├── EncodeFailed (500)
├── SettingsError (500: raised at start-up, before any request)
├── DownloadError (500: raised by `swaparoony models`, never by a request)
└── ServiceNotReady (503)
    ├── DecodeWorkerLost
    ├── ModelsUnavailable
    │   ├── ModelFileMissing
    │   └── ModelFileInvalid
    ├── GalleryUnavailable
    ├── AcceleratorUnavailable
    └── CredentialsUnavailable
"""

from __future__ import annotations


class SwaparoonyError(Exception):
    """Base of every error this package raises on purpose."""

    status = 500
    short = "error"
    title = "Error"


class BadRequest(SwaparoonyError):
    """The request's parameters cannot be used as given."""

    status = 400
    short = "bad_request"
    title = "Bad request"


class UndecodableImage(BadRequest):
    """The upload is not a readable image."""

    short = "invalid_image"
    title = "Invalid image"


class UnknownDestination(BadRequest):
    """A destination name that is not in the gallery."""

    status = 404
    short = "unknown_destination"
    title = "Unknown destination"


class UploadTooLarge(SwaparoonyError):
    """The upload exceeds the byte or pixel limit."""

    status = 413
    short = "too_large"
    title = "Image too large"


class UnsupportedImageFormat(SwaparoonyError):
    """The upload is an image in a format the service does not accept."""

    status = 415
    short = "unsupported_format"
    title = "Unsupported image format"


class DecodeTooCostly(SwaparoonyError):
    """A valid image built to take too long (or too much memory) to decode."""

    status = 422
    short = "too_costly"
    title = "Image too costly to decode"


class NoFaceFound(SwaparoonyError):
    """The upload holds no detectable face."""

    status = 422
    short = "no_face"
    title = "No face detected"


class FaceIdOutOfRange(SwaparoonyError):
    """A 1-based face index outside the faces that were found."""

    status = 422
    short = "face_id_out_of_range"
    title = "Face id out of range"


class TooManySwaps(SwaparoonyError):
    """A request asks for more model swaps (faces x destinations x pixel-boost tiles) than one request may."""

    status = 422
    short = "too_many_swaps"
    title = "Too many swaps"


class ModelNotInstalled(SwaparoonyError):
    """An option needs a model file the service did not load (an enhancer, a face parser or occluder)."""

    status = 422
    short = "model_not_installed"
    title = "Model not installed"


class GalleryNotWritable(SwaparoonyError):
    """The destinations directory cannot take a new or removed portrait (read-only mount, full disk)."""

    status = 409
    short = "gallery_not_writable"
    title = "Gallery not writable"


class GalleryFull(GalleryNotWritable):
    """Another portrait would take the gallery past its bound on portraits or decoded pixels."""

    short = "gallery_full"
    title = "Gallery full"


class ServiceNotReady(SwaparoonyError):
    """The service is up but cannot swap yet."""

    status = 503
    short = "not_ready"
    title = "Service not ready"


class ModelsUnavailable(ServiceNotReady):
    """The model files could not be loaded."""


class ModelFileMissing(ModelsUnavailable):
    """One or more model files are not where the service looked."""


class ModelFileInvalid(ModelsUnavailable):
    """A model file exists but is corrupt or breaks the expected contract."""


class GalleryUnavailable(ServiceNotReady):
    """The destination gallery cannot be read, or holds no portrait a face can be swapped into."""


class AcceleratorUnavailable(ServiceNotReady):
    """CUDA was asked for but ONNX Runtime came up on CPU; the service refuses to start."""


class CredentialsUnavailable(ServiceNotReady):
    """The operator's signing certificate or key cannot be used, so no picture could say what it is."""


class SigningFailed(SwaparoonyError):
    """A picture could not be signed; it is not sent unmarked."""

    short = "signing_failed"
    title = "Signing failed"


class EncodeFailed(SwaparoonyError):
    """A result could not be encoded in the format asked for: the service's fault, never the upload's."""

    short = "encode_failed"
    title = "Encoding failed"


class SettingsError(SwaparoonyError):
    """A configuration variable has a value the service cannot use; start-up stops and names it."""

    short = "bad_setting"
    title = "Bad setting"


class DownloadError(SwaparoonyError):
    """A model file could not be fetched or verified from any of its sources."""

    short = "download_failed"
    title = "Download failed"


class DecodeWorkerLost(ServiceNotReady):
    """A decode worker died, broke its protocol, ran past its deadline, stalled or never finished starting; the
    decoder pool replaces it and answers with what the person can do."""

    def __init__(self, timed_out: bool, starting: bool = False, stalled: bool = False) -> None:
        super().__init__("timed out" if timed_out else "worker lost")
        self.timed_out = timed_out
        self.starting = starting
        self.stalled = stalled
