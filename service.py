"""BentoML's declarations: a batching model service on the GPU and the public API in front of it.

All image and model logic lives in the framework-free `swaparoony` package, and everything the declarations stand on
(settings, the engine's life cycle, readiness, middleware, the original and operator routes, framework patches) in
one owner, http_api/serving.py's Serving, built here once per process from the environment.
"""

from __future__ import annotations

from typing import Any

import bentoml
from starlette.responses import Response

import bento_models
from http_api.model_wire import Carried
from http_api.schemas import (
    ARCHIVE, ONE_SWAP_INPUT, PICTURE, SWAP_INPUT, SWAP_RESPONSE, DestinationOut, FaceOut, ImageUpload, OutputFormat,
    answers_errors, similarity_header, swap_json, swap_options, upload_bytes,
)
from http_api.serving import Serving
from http_api.task_store import task_progress
from swaparoony.results_archive import results_archive
from swaparoony.types import FaceSwapRequest, FaceSwapResult, ModelAnswers, ModelRun

serving = Serving.from_environment()


@bentoml.service(**serving.model_service())
class FaceModels:
    """Owns the ONNX Runtime sessions: one worker per GPU, pinned to it, so each GPU holds one copy of each model
    and batches its own calls."""

    if bento_models.stored_dir() is not None:
        # `bentoml build` packs the store's model into the Bento only when there is one to pack.
        stored_models = bentoml.models.BentoModel(bento_models.TAG)

    def __init__(self) -> None:
        self.host = serving.model_host(bentoml.server_context.worker_index)

    def __is_ready__(self) -> bool:
        return self.host.ready

    @bentoml.on_startup
    async def keep_serving_while_the_api_drains(self) -> None:
        """On SIGTERM, answer model calls until every API worker has finished its in-flight requests."""
        self.host.keep_serving_while_the_api_drains()

    @bentoml.api
    def status(self) -> dict[str, Any]:
        """Whether the models loaded, and if not, what to do about it."""
        return self.host.status()

    @bentoml.api
    def loaded(self) -> dict[str, list[str]]:
        """The model files loaded, by role: the enhancers, face parser and occluder the API may offer."""
        return self.host.loaded.files() if self.host.loaded else {}

    @bentoml.api(**serving.batching())
    def run(self, runs: list[Carried[ModelRun]]) -> list[Carried[ModelAnswers]]:
        """Each caller's items through its role's model (the detector's canvases, and whatever role a family adds):
        batched the same way for every role."""
        return self.host.run(runs)

    @bentoml.api(**serving.batching())
    def swap_faces(self, requests: list[Carried[FaceSwapRequest]]) -> list[Carried[FaceSwapResult]]:
        """Per request, its source faces swapped into their destination crops, with each result's identity
        similarity: the embeddings and latents stay here, so a request makes two calls to this service
        (run for the detector, swap_faces), not three."""
        return self.host.swap_faces(requests)


@bentoml.asgi_app(serving.original_api, path="/")
@bentoml.service(**serving.api_service())
class Swaparoony:
    """Face swap onto the preloaded destination portraits. Faces are numbered left to right from 1."""

    models = bentoml.depends(FaceModels)

    @bentoml.on_startup
    async def analyse_destinations_now(self) -> None:
        """Prepare the gallery as soon as the model service answers, not on the first request."""
        serving.start(self.models)

    @bentoml.on_shutdown
    async def release_the_model_service(self) -> None:
        """Runs once this worker has answered its last request."""
        serving.stop()

    async def __is_ready__(self) -> bool:
        return await serving.readiness() is None

    @bentoml.task(route="/swap", input_spec=SWAP_INPUT, output_spec=SWAP_RESPONSE)
    @answers_errors
    async def swap(self, **fields: Any) -> Response:
        """Swap a face of the upload (or several, with face_map) into every selected destination (all by default); the
        pictures and clips come as base64 JSON, each with how well the identity came through. Also a task:
        /swap/submit, then /swap/status (with progress) and /swap/get."""
        outcome = await (await serving.engine()).swap(upload_bytes(fields["image"]), swap_options(fields),
                                                      task_progress())
        return Response(swap_json(outcome), media_type="application/json")

    @bentoml.task(route="/swap_image", input_spec=ONE_SWAP_INPUT, output_spec=PICTURE)
    @answers_errors
    async def swap_image(self, **fields: Any) -> Response:
        """Swap into one destination and get the picture itself, shown in Swagger UI; a clip destination gives the
        clip. X-Identity-Similarity says how well the identity came through. Also a task (/swap_image/submit)."""
        (result,) = (await (await serving.engine()).swap(upload_bytes(fields["image"]), swap_options(fields),
                                                         task_progress())).swapped
        return Response(result.data, media_type=result.media_type, headers=similarity_header(result.identity_similarity))

    @bentoml.task(route="/swap_zip", input_spec=SWAP_INPUT, output_spec=ARCHIVE)
    @answers_errors
    async def swap_zip(self, **fields: Any) -> Response:
        """Like /swap, with the pictures and clips as files in a ZIP archive (no base64): results.json lists them and
        the skipped. Also a task (/swap_zip/submit)."""
        outcome = await (await serving.engine()).swap(upload_bytes(fields["image"]), swap_options(fields),
                                                      task_progress())
        return Response(results_archive(outcome), media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="swaparoony.zip"'})

    @bentoml.task(route="/swap_sheet", input_spec=SWAP_INPUT, output_spec=PICTURE)
    @answers_errors
    async def swap_sheet(self, **fields: Any) -> Response:
        """Swap into every selected destination and get one contact sheet with each destination's name. A clip shows
        its first swapped frame. Also a task (/swap_sheet/submit)."""
        sheet, lowest = await (await serving.engine()).swap_sheet(upload_bytes(fields["image"]), swap_options(fields),
                                                                  task_progress())
        return Response(sheet.data, media_type=sheet.media_type, headers=similarity_header(lowest))

    @bentoml.api(route="/faces")
    @answers_errors
    async def faces(self, image: ImageUpload) -> list[FaceOut]:
        """The faces found in an upload, left to right, to help choose source_face_id."""
        found = await (await serving.engine()).find_faces(upload_bytes(image))
        return [FaceOut(face_id=i, bbox=[round(v, 1) for v in f.bbox], score=round(f.score, 4)) for i, f in enumerate(found, 1)]

    @bentoml.api(route="/faces_image", output_spec=PICTURE)
    @answers_errors
    async def faces_image(self, image: ImageUpload, output_format: OutputFormat = "jpeg") -> Response:
        """The upload with each face boxed and numbered left to right: the number is source_face_id."""
        picture, count = await (await serving.engine()).faces_picture(upload_bytes(image), output_format)
        return Response(picture.data, media_type=picture.media_type, headers={"X-Faces-Found": str(count)})

    @bentoml.api(route="/destinations")
    @answers_errors
    async def destinations(self) -> list[DestinationOut]:
        """The destination gallery in its order, with each portrait's faces, title, or why it cannot be used."""
        return [DestinationOut.of(d) for d in (await serving.engine()).gallery.destinations.values()]


serving.assemble(FaceModels, Swaparoony)
