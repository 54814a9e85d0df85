"""The OpenAPI document people and Swagger UI read: valid 3.1, every parameter explained, the real errors.

BentoML generates a document that says 3.0.2 but uses 3.1 features, types uploads as `file` (not
a JSON Schema type), marks every multipart text field `application/json` (so Swagger UI sends the
word `jpeg` as a JSON blob), documents 400/404/500 with a body the service never sends, and fills
the page with BentoML's own title, badges and links. It also gives optional fields a `null` default
(Swagger UI fills the text `null` in and sends it), pictures a schema Swagger UI turns into random
bytes as their example, a servers list of just `.`, and its APIs no summary. This rewrites what it
generated.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from swaparoony.imaging.image_file import HINT
from swaparoony.models.face_enhancer import ENHANCERS
from swaparoony.models.face_parser import REGIONS

DESCRIPTION = """Swap a face from a photo into the portraits kept on this server. Faces are numbered from
1, left to right.

**Start here** (open an API, press *Try it out*, choose a photo, *Execute*):

1. `POST /faces_image`: your photo with each face boxed and numbered, to choose `source_face_id`.
2. `POST /swap_image`: the face swapped into one destination portrait, shown as a picture.
3. `POST /swap_sheet`: the face swapped into every destination, as one contact sheet.

`POST /swap` and `POST /faces` answer the same as JSON for programs (`POST /swap_zip`: the pictures as files
in a ZIP, no base64); `POST /destinations` lists the portraits. Every picture is an AI face swap, and says so in the file: a signed C2PA manifest (Content
Credentials) and IPTC XMP, which `swaparoony inspect FILE` reads back. Model weights: InsightFace, non-commercial research use only."""


@dataclass(frozen=True)
class Parameter:
    """How one API parameter is explained in the document."""

    description: str
    example: Any = None


def parameters(max_upload_bytes: int, max_pixels: int, destinations: Sequence[str]) -> dict[str, Parameter]:
    first = destinations[0] if destinations else "astronaut.png"
    return {
        "image": Parameter(
            f"The photo with the face(s) to use. {HINT[:-1]}, at most {max_upload_bytes // 2**20} MiB and "
            f"{max_pixels / 1e6:g} megapixels."
        ),
        "source_face_id": Parameter("Which face of the photo to use: 1 is the leftmost, 2 the next, and so on "
                                    "(`POST /faces_image` shows the numbers).", 1),
        "destination_face_id": Parameter("Which face of each destination portrait to replace, counted the same way; 0 "
                                         "replaces every face of each destination with the chosen upload face.", 1),
        "pixel_boost": Parameter("The size each face is swapped at: 128 (the model's own), 256 or 512 for a sharper face "
                                 "(4 or 16 swaps per face, so about 4x or 16x the model work).", 128),
        "face_map": Parameter("Several faces at once: upload face:destination face pairs, e.g. 1:2,2:1 puts upload "
                              "face 1 into destination face 2 and upload face 2 into destination face 1. When given, "
                              "source_face_id and destination_face_id are not used."),  # no example: Swagger UI would fill it in
        "color_match": Parameter("Match the swapped face's colours (mean and spread in LAB, inside the blend mask) to the "
                                 "destination face's lighting before pasting.", False),
        "destinations": Parameter("The destination portraits to swap into; leave empty for all of them. In a form, "
                                  "repeat the field or give comma-separated names.", [first]),
        "destination": Parameter("The destination portrait to swap into (`POST /destinations` lists them).", first),
        "output_format": Parameter("The format of the returned picture(s).", "jpeg"),
        "clip_format": Parameter("What a clip destination (`moving` in `POST /destinations`) comes back as: mp4 "
                                 "(H.264 with the clip's sound), an animated webp (plays in this page) or gif, or "
                                 "still (its first swapped frame, in output_format).", "mp4"),
        # No examples for the enhancer and masks: Swagger UI would fill them in, turning them on for every try.
        "enhancer": Parameter("A face enhancer that restores the swapped face (inswapper's 128-pixel face looks soft); "
                              "none by default. The list offers those installed; `swaparoony models pull --with KEY` "
                              f"installs one of {', '.join(ENHANCERS)}."),
        "enhancer_blend": Parameter("With an enhancer: how much of the restored face replaces the swapped one, 0-100.", 80),
        "enhancer_weight": Parameter("With enhancer=codeformer: its fidelity, 0 (more restoration) to 1 (closer to the "
                                     "swapped face); the other enhancers have no such input.", 0.5),
        "mask": Parameter("The masks the swapped face is pasted through; they multiply. box: the feathered face box "
                          "(always applied). occlusion: leaves what covers the face (a hand, a microphone, a fringe) in "
                          "front of it. region: replaces only the face regions in mask_regions (so glasses stay). "
                          "Default: the portrait's own (the operator's gallery.json), else box. In a form, repeat the "
                          "field or give comma-separated names."),
        "mask_regions": Parameter("With mask=region: the face regions the swap replaces; default all of them ("
                                  f"{', '.join(REGIONS)}). Leave out glasses to keep a portrait's glasses."),
    }


@dataclass(frozen=True)
class ErrorStatus:
    """One error status as documented: when it happens, and an example body."""

    description: str
    example: dict[str, str]


ERRORS: dict[int, ErrorStatus] = {
    400: ErrorStatus("The photo cannot be read, or a parameter is wrong or unknown.",
                     {"error": f"The upload is not an image Swaparoony can read. {HINT}", "code": "invalid_image"}),
    404: ErrorStatus("A destination name is not in the gallery.",
                     {"error": "unknown destination(s) ['nope.png']; known: [...] (see POST /destinations)",
                      "code": "unknown_destination"}),
    413: ErrorStatus("The upload or request body is too large (bytes or pixels).",
                     {"error": "The image is 9000x6000 = 54,000,000 pixels; the limit is 40,000,000.", "code": "too_large"}),
    415: ErrorStatus("The photo is in a format the service does not read.",
                     {"error": f"GIF images are not supported. {HINT}", "code": "unsupported_format"}),
    422: ErrorStatus("No face in the photo, a face number out of range, a photo too costly to decode, more swaps "
                     "than one request may ask for (too_many_swaps), or an enhancer or mask whose model file is not "
                     "installed (model_not_installed).",
                     {"error": "source_face_id=4 is out of range: 3 face(s) found in the upload; use 1 to 3, counted left "
                               "to right.", "code": "face_id_out_of_range"}),
    500: ErrorStatus("The server failed (a picture it could not sign is never sent unmarked); its log says why.",
                     {"error": "The server failed to process the request; the log says why.", "code": "internal_error"}),
    503: ErrorStatus("Not ready (models missing or loading, no usable destination) or busy (with Retry-After).",
                     {"error": "The service is starting; retry shortly.", "code": "not_ready"}),
    504: ErrorStatus("The request took longer than the service's request timeout.",
                     {"error": "The request took longer than 290 seconds and was stopped; try again, with a smaller photo "
                               "or fewer destinations.", "code": "timeout"}),
}
"""The statuses of the public APIs (the operator routes document their own 409, in gallery_admin.py)."""
NO_UPLOAD = (500, 503, 504)
TAGS = [
    {"name": "Service APIs", "description": "Face swap: start with /faces_image, then /swap_image or /swap_sheet."},
    {"name": "Original Swaparoony API", "description": "The original service's routes, for its React booth frontend "
                                                       "and scripts: same engine, original bodies."},
    {"name": "Gallery (operators)", "description": "Add, replace and remove destination portraits with the operator "
                                                   "token (SWAPAROONY_ADMIN_TOKEN); Authorize with it first."},
    {"name": "Infrastructure", "description": "Probes and Prometheus metrics."},
]
ERROR_SCHEMA = {
    "type": "object", "required": ["error", "code"], "title": "Error",
    "properties": {
        "error": {"type": "string", "description": "What went wrong and what to do, in a sentence."},
        "code": {"type": "string", "description": "A short code to branch on, e.g. no_face or too_large."},
    },
}
PICTURE_TYPES = ("image/jpeg", "image/png", "image/webp")
CLIP_TYPES = ("video/mp4", "image/gif")
CLIP_ROUTES = ("/swap_image", "/swap_image/get")
"""The picture routes that answer a clip destination with the clip itself (a sheet shows its first swapped frame)."""
TASK_STEPS = ("submit", "status", "get", "cancel")
TASK_STATUS = {
    "type": "object", "title": "TaskStatus", "required": ["task_id", "status"],
    "properties": {
        "task_id": {"type": "string"},
        "status": {"type": "string", "enum": ["in_progress", "completed", "failed", "canceled"]},
        "created_at": {"type": "string", "format": "date-time"},
        "executed_at": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
        "progress": {"type": "object", "description": "Frames swapped of the frames the request makes (a picture is "
                                                      "one; a clip each frame with a face), and its stage.",
                     "properties": {"frames_done": {"type": "integer"}, "frames_total": {"type": "integer"},
                                    "stage": {"type": "string", "enum": ["queued", "swapping", "encoding", "done"]}}},
        "reason": {"type": "string", "description": "Why a failed task failed: its error's sentence, or the deadline."},
    },
}
"""What a task's status says (BentoML documents other status names than it answers with, and no progress)."""
TASK_ERRORS: dict[str, dict[int, ErrorStatus]] = {
    "status": {404: ErrorStatus("No such task here: never submitted, its answer already dropped "
                                "(SWAPAROONY_TASK_RESULT_S), or it was taken by another replica.",
                                {"error": "No such task: it never existed, or its answer was dropped 600 s after it "
                                          "ended (SWAPAROONY_TASK_RESULT_S).", "code": "task_not_found"})},
    "get": {400: ErrorStatus("The task is still running, or it failed for a bad parameter.",
                             {"error": "The task is still running: see its status.", "code": "task_running"}),
            409: ErrorStatus("The task was cancelled.", {"error": "The task was cancelled.", "code": "task_cancelled"}),
            504: ErrorStatus("The task ran past SWAPAROONY_TASK_DEADLINE_S and was stopped.",
                             {"error": "The task ran past its 600-second deadline (SWAPAROONY_TASK_DEADLINE_S) and was "
                                       "stopped.", "code": "task_deadline"})},
    "submit": {429: ErrorStatus("This API worker holds SWAPAROONY_MAX_TASKS tasks; retry once some are done.",
                                {"error": "This worker holds 32 tasks (SWAPAROONY_MAX_TASKS), running or with answers "
                                          "not yet fetched; retry once some are done.", "code": "too_many_tasks"})},
}
INFRASTRUCTURE = {
    "/livez": ("Liveness probe", "200 while the process is alive."),
    "/healthz": ("Liveness probe (deprecated: use /livez)", "200 while the process is alive; kept for old probes."),
    "/readyz": ("Readiness probe: ready to swap", "200 once the models are loaded and the gallery analysed; until then 503 with "
                                 "`{error, code}` saying why."),
    "/metrics": ("Prometheus metrics", "BentoML's request series and Swaparoony's own, in Prometheus' text format."),
}
"""BentoML's probes, described as they behave here (BentoML's text is HTML about Kubernetes)."""


def public_document(generated: dict[str, Any], version: str, max_upload_bytes: int, max_pixels: int,
                    destinations: Sequence[str], picture_routes: Sequence[str],
                    archive_routes: Sequence[str] = ()) -> dict[str, Any]:
    """BentoML's generated document, made valid and explained."""
    doc = copy.deepcopy(generated)
    doc["openapi"] = "3.1.0"
    doc["info"] = {"title": "Swaparoony", "version": version, "description": DESCRIPTION}
    doc["tags"] = TAGS
    # BentoML's `.` (relative to /docs.json) only made Swagger UI show a Servers box with one meaningless choice;
    # without a list, requests go to the server that serves the page (OpenAPI's default, `/`).
    doc.pop("servers", None)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    for schema in schemas.values():
        _fix_file_types(schema)
    schemas.pop("TaskStatusResponse", None)
    schemas["TaskStatus"] = TASK_STATUS
    explained = parameters(max_upload_bytes, max_pixels, destinations)
    paths = doc.get("paths", {})
    for path in [path for path in paths if path.endswith("/retry")]:
        del paths[path]  # answers only that a task's upload is not kept (README "Tasks")
    for path, item in paths.items():
        for operation in item.values():
            _summarise(path, operation)
        step = path.rpartition("/")[2]
        if step in TASK_STEPS:
            _task_step(path, item, step, path.rpartition("/")[0] in picture_routes,
                       path.rpartition("/")[0] in archive_routes)
        operation = item.get("post")
        if not operation or "x-bentoml-name" not in operation or step in ("status", "get", "cancel"):
            continue
        body = operation.get("requestBody", {}).get("content", {})
        form = body.get("multipart/form-data")
        if form:
            form.pop("encoding", None)  # text fields go as plain text, not JSON blobs
            _explain(form["schema"], explained, destinations)
        takes_upload = bool(form)
        operation["responses"] = {
            "200": _success(operation["responses"].get("200", {}), path in picture_routes, path in archive_routes,
                            path in CLIP_ROUTES),
            **{str(status): _error(error) for status, error in ERRORS.items() if takes_upload or status in NO_UPLOAD},
            **{str(status): _error(error) for status, error in TASK_ERRORS.get(step, {}).items()},
        }
    return doc


def _task_step(path: str, item: dict[str, Any], step: str, picture: bool, archive: bool) -> None:
    """A task route as it behaves here: its status with progress, its answer, its cancel."""
    operation = next(iter(item.values()))
    name = operation.get("x-bentoml-name", "").rpartition("_")[0] or path
    operation["operationId"] = f"swaparoony__{name}_{step}"  # BentoML gives /cancel the id of /retry
    status = {"description": "The task's status and progress.",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskStatus"}}}}
    if step == "submit":
        operation["description"] = ("Submit the same fields as a task: answers at once with its task_id; then "
                                    "status, get, cancel (README \"Tasks\").")
        operation["summary"] = "Submit as a task"
        operation["responses"]["200"] = status
        return
    errors = {**TASK_ERRORS["status"], **TASK_ERRORS.get(step, {})}
    answer = _success(operation["responses"].get("200", {}), picture, archive, path in CLIP_ROUTES) \
        if step == "get" else status
    operation["responses"] = {"200": answer, **{str(code): _error(error) for code, error in errors.items()}}


def _summarise(path: str, operation: dict[str, Any]) -> None:
    """A summary for the list (BentoML gives its APIs none): the first clause of the API's docstring."""
    if path in INFRASTRUCTURE:
        operation["summary"], operation["description"] = INFRASTRUCTURE[path]
        return
    description = inspect.cleandoc(operation.get("description") or "")
    if description:
        operation["description"] = description  # BentoML keeps the docstring's indentation on its later lines
        operation.setdefault("summary", first_clause(description))


def first_clause(text: str) -> str:
    """Text up to its first full stop, semicolon or colon that ends a clause, on one line."""
    return re.split(r"[.;:](?:\s|$)", " ".join(text.split()), maxsplit=1)[0]


def _fix_file_types(schema: dict[str, Any]) -> None:
    """Files as binary strings: BentoML writes type "file" (not a JSON Schema type); FastAPI writes 3.1's
    contentMediaType alone, which Swagger UI 5.12 does not offer a file picker for."""
    for prop in schema.get("properties", {}).values():
        if prop.get("type") == "file":
            prop.clear()
            prop.update({"type": "string", "format": "binary", "contentMediaType": "image/*"})
        elif prop.get("type") == "string" and "contentMediaType" in prop:
            prop.setdefault("format", "binary")


def _explain(schema: dict[str, Any], explained: dict[str, Parameter], destinations: Sequence[str]) -> None:
    for name, prop in schema.get("properties", {}).items():
        if "default" in prop and prop["default"] is None:
            del prop["default"]  # Swagger UI would fill the text "null" in and send it (face_map, destinations)
        parameter = explained.get(name)
        if parameter is None:
            continue
        prop["description"] = parameter.description
        if parameter.example is not None:
            prop["examples"] = [parameter.example]
        if name == "destination" and destinations:
            prop["enum"] = list(destinations)
        if name == "destinations":
            prop["items"] = {"type": "string", **({"enum": list(destinations)} if destinations else {})}


def _success(generated: dict[str, Any], picture: bool, archive: bool = False, clips: bool = False) -> dict[str, Any]:
    """The 200 answer; a file is a media type without a schema (OpenAPI 3.1's way to say "these bytes"), because
    Swagger UI turns an image or ZIP schema into random bytes and shows them as the example."""
    if archive:
        return {"description": "A ZIP archive (application/zip): each picture as a file named after its destination, "
                               "and results.json listing them (and the destinations skipped, with why).",
                "content": {"application/zip": {}}}
    if not picture:
        return generated
    if clips:
        return {"description": "The picture itself, in the requested output_format (image/jpeg, image/png or "
                               "image/webp), or a clip destination's clip in clip_format (video/mp4, image/webp or "
                               "image/gif), carrying its Content Credentials; Swagger UI shows it once executed (an MP4 "
                               "as a download link).",
                "content": {media: {} for media in PICTURE_TYPES + CLIP_TYPES}}
    return {"description": "The picture itself, in the requested output_format (image/jpeg, image/png or image/webp), "
                           "carrying its Content Credentials; Swagger UI shows it once executed.",
            "content": {media: {} for media in PICTURE_TYPES}}


def _error(error: ErrorStatus) -> dict[str, Any]:
    return {"description": error.description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}, "example": error.example,
    }}}
