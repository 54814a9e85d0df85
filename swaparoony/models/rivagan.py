"""RivaGAN, the watermark family: an encoder that hides 32 bits in a picture and a decoder that reads them back,
as the ONNX files invisible-watermark 0.2.0 ships (MIT), run without its torch wrapper.

The contract, as that wrapper drives the files: frames (batch, 3 BGR channels, 1 time step, height, width) scaled to
[-1, 1]; the encoder also takes the payload as 32 floats of 0 or 1 and gives the marked frame back in the same
layout; the decoder gives 32 logits, a bit is 1 where its logit is positive. Both run on a small square copy of the
picture (provenance/watermark.py scales the encoder's change back up), which is what makes the mark cost a fraction
of a second and outlive resizing and cropping (benchmarks/RESULTS.md, "Watermark candidates").

The encoder is a role the model service loads (SWAPAROONY_WATERMARK=on); the decoder is only for reading marks back
(`swaparoony inspect`), so it is optional: `swaparoony models pull --with rivagan_decoder`.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..imaging.clip_codec import first_frame, is_mp4
from ..provenance.watermark import SIDE, Reading, add_change, reading, small_copy
from ..types import Frame
from .family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from .onnx_loader import CPU, open_session
from .specs import BATCH, FREE, ModelSpec, Normalisation, Shape, Source

if TYPE_CHECKING:  # model_calls imports the registry, which imports this module
    from .model_calls import ModelCalls

ROLE = "watermark"
READER_ROLE = "watermark_reader"
PAYLOAD_BITS = 32
WHEEL = ("https://files.pythonhosted.org/packages/py3/i/invisible-watermark/"
         "invisible_watermark-0.2.0-py3-none-any.whl")
REPOSITORY = "https://raw.githubusercontent.com/ShieldMnt/invisible-watermark/3f739138d8642c9359365482c8331903ba45ef22"
LICENCE = "RivaGAN's ONNX files from invisible-watermark 0.2.0: MIT, commercial use allowed under its terms."
FRAME = (BATCH, 3, 1, FREE, FREE)
HALF_RANGE = 127.5
"""Pixels p go in as p / HALF_RANGE - 1, in [-1, 1], and come out the same way."""


def _spec(key: str, role: str, size: int, sha256: str, inputs: tuple[Shape, ...], outputs: tuple[Shape, ...]) -> ModelSpec:
    return ModelSpec(key=key, role=role, relative_path=f"{key}.onnx", size=size, sha256=sha256,
                     sources=(Source(WHEEL, f"{key}.onnx"), Source(f"{REPOSITORY}/imwatermark/{key}.onnx")),
                     input_size=SIDE, normalisation=Normalisation(HALF_RANGE, HALF_RANGE), inputs=inputs,
                     outputs=outputs, licence=LICENCE)


ENCODER = _spec("rivagan_encoder", ROLE, 657_164, "66bc7814fadac7d686105c8ab26c6cf2cc8e40deb83e67bb6ef5b9de9b8ece0d",
                (FRAME, (BATCH, PAYLOAD_BITS)), (FRAME,))
DECODER = _spec("rivagan_decoder", READER_ROLE, 1_088_816,
                "6b006690cf352fa50a91a0b6d6241dbcded0a9957969e2c0665cf9a7011b3880", (FRAME,), ((BATCH, PAYLOAD_BITS),))


def _frames(images: Sequence[Frame]) -> np.ndarray:
    """BGR images of one size as the files' (batch, channel, time, height, width) input in [-1, 1]."""
    stacked = np.stack(images).astype(np.float32) / np.float32(HALF_RANGE) - np.float32(1.0)
    return stacked.transpose(0, 3, 1, 2)[:, :, None]


class WatermarkEncoder(BatchedModel[Frame, np.ndarray]):
    """Marks small BGR copies with the service's payload: each copy marked, as float32 pixels (unrounded, so the
    caller's change, marked less copy, keeps the encoder's fine detail)."""

    def __init__(self, opened: OpenedModel, payload: Sequence[int]) -> None:
        super().__init__(opened)
        if len(payload) != PAYLOAD_BITS:
            raise ValueError(f"a RivaGAN payload has {PAYLOAD_BITS} bits, not {len(payload)}")
        self.payload = np.array(payload, np.float32)

    def inputs(self, copies: Sequence[Frame]) -> list[np.ndarray]:
        return [_frames(copies), np.broadcast_to(self.payload, (len(copies), PAYLOAD_BITS)).copy()]

    def answers(self, outputs: list[np.ndarray], count: int) -> list[np.ndarray]:
        marked = (np.clip(outputs[0][:, :, 0], -1.0, 1.0) + 1.0) * np.float32(HALF_RANGE)
        return list(marked.transpose(0, 2, 3, 1))


class WatermarkDecoder(BatchedModel[Frame, np.ndarray]):
    """Reads the 32 payload bits' logits from small BGR copies (positive: 1)."""

    def inputs(self, copies: Sequence[Frame]) -> list[np.ndarray]:
        return [_frames(copies)]

    def answers(self, outputs: list[np.ndarray], count: int) -> list[np.ndarray]:
        return list(outputs[0].astype(np.float32))


def _encoder(opened: OpenedModel, options: RunOptions) -> WatermarkEncoder:
    return WatermarkEncoder(opened, options.watermark_payload)


def _decoder(opened: OpenedModel, options: RunOptions) -> WatermarkDecoder:
    return WatermarkDecoder(opened)


FAMILY = ModelFamily(ROLE, {ENCODER.key: ENCODER}, ENCODER.key, _encoder)
READER_FAMILY = ModelFamily(READER_ROLE, {DECODER.key: DECODER}, None, _decoder)


async def watermarked(frames: Sequence[Frame], models: ModelCalls) -> list[Frame]:
    """The frames marked (in place where they are writable): their small copies through the encoder in one call, the
    copies made and each change (marked copy less copy) added off the event loop."""
    if not frames:
        return []
    copies = await asyncio.to_thread(lambda: [small_copy(frame) for frame in frames])
    marked = await models.run(ROLE, copies)
    return await asyncio.to_thread(lambda: [add_change(frame, mark - copy.astype(np.float32))
                                            for frame, mark, copy in zip(frames, marked, copies)])


def read(picture: Path, models_dir: Path) -> Reading:
    """The watermark in a picture file, read on the CPU by the decoder in models_dir; FileNotFoundError saying how to
    install the decoder where it is not there."""
    path = models_dir / DECODER.relative_path
    if not path.is_file():
        raise FileNotFoundError(f"the watermark reader {path} is not installed: swaparoony models pull --with "
                                f"{DECODER.key} --models-dir {models_dir}")
    session, layout = open_session(path, DECODER, (CPU,))
    data = picture.read_bytes()
    if is_mp4(data):  # a clip: every frame carries the mark
        bgr = first_frame(data)
    else:
        with Image.open(io.BytesIO(data)) as image:
            bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
    (logits,) = WatermarkDecoder(OpenedModel(session, layout, DECODER))([small_copy(bgr)])
    return reading(logits)
