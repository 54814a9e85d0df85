"""Moving pictures in and out: a gallery clip (GIF, animated WebP, MP4, WebM) decoded to frames within its bounds,
and swapped frames encoded back with the clip's own timing (and, for MP4, its audio).

PyAV runs FFmpeg from its wheels (H.264 by libx264, the audio copied packet for packet, never re-encoded); Pillow
reads and writes GIF and animated WebP, whose per-frame durations FFmpeg's readers do not keep.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, cast

import av
import cv2
import numpy as np
import PIL.Image
import PIL.ImageSequence

from ..errors import EncodeFailed
from ..types import Frame

logger = logging.getLogger(__name__)
ClipFormat = Literal["mp4", "webp", "gif"]
CLIP_MEDIA_TYPES: dict[ClipFormat, str] = {"mp4": "video/mp4", "webp": "image/webp", "gif": "image/gif"}
"""The formats a swapped clip is written in: MP4 (H.264) by default, animated WebP, GIF only where asked."""
CLIP_SUFFIXES = {".gif": "image/gif", ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
                 ".webm": "video/webm"}
"""Gallery files that are always clips, by suffix; a .webp file is one when its header says it is animated."""
FILE_SUFFIXES = {"video/mp4": ".mp4", "image/gif": ".gif"}
PILLOW_FORMATS = (".gif", ".webp")
MILLISECONDS = Fraction(1, 1000)
GIF_DEFAULT_MS = 100
"""A GIF frame that states no delay (0) is shown for 100 ms by browsers; it keeps that here."""
GIF_STEP_MS, GIF_SHORTEST_MS = 10, 20
"""GIF stores hundredths of a second, and browsers show a frame of 10 ms or less for 100 ms: a clip faster than
50 fps comes out as a GIF at 50 fps (slower), never 5 times slower."""
H264_QUALITY = {"crf": "20", "preset": "veryfast"}
"""Visually clean at booth sizes; veryfast: a 3-second 640-pixel clip encodes in a fraction of its swap's time."""


class ClipRefused(ValueError):
    """A clip the gallery cannot take, and why (a person reads it in /destinations)."""


class ClipPastBound(ClipRefused):
    """A readable clip past one of the SWAPAROONY_MAX_CLIP_* bounds (an operator's PUT answers 413 for it)."""


@dataclass(frozen=True)
class ClipBounds:
    """What one gallery clip may hold: frames, seconds, pixels per frame (SWAPAROONY_MAX_CLIP_*)."""

    max_frames: int = 120
    max_seconds: float = 10.0
    max_frame_pixels: int = 1280 * 720


@dataclass(frozen=True)
class Timing:
    """When each frame starts, and when the clip ends, in its own time base: what its output keeps."""

    time_base: Fraction
    starts: tuple[int, ...]
    end: int

    @property
    def seconds(self) -> float:
        return float((self.end - self.starts[0]) * self.time_base)

    def durations_ms(self, step: int = 1, shortest: int = 1) -> list[int]:
        """Each frame's display time in whole milliseconds (what GIF and WebP store): the differences of its edges
        rounded to `step` ms, so that the times add up to the clip's length, and none under `shortest`."""
        edges = [round(float((edge - self.starts[0]) * self.time_base) * 1000 / step) * step
                 for edge in [*self.starts, self.end]]
        return [max(shortest, after - before) for before, after in zip(edges, edges[1:])]

    @property
    def rate(self) -> Fraction:
        """The mean frame rate, for the encoder's header; each frame keeps its own start."""
        return Fraction(len(self.starts)) / max(Fraction(1, 1000), (self.end - self.starts[0]) * self.time_base)


@dataclass(frozen=True)
class DecodedClip:
    """A clip's frames (BGR), their timing, and whether it has a sound track to copy."""

    frames: list[Frame]
    timing: Timing
    audio: bool = False


def moves(suffix: str, head: bytes) -> bool:
    """Whether a gallery file is a clip: by suffix, or a WebP whose extended header has the animation flag."""
    if suffix in CLIP_SUFFIXES:
        return True
    return suffix == ".webp" and head[12:16] == b"VP8X" and len(head) > 20 and bool(head[20] & 0x02)


def is_mp4(data: bytes) -> bool:
    """Whether a file is an ISO media file (MP4, MOV): its first box is `ftyp`."""
    return data[4:8] == b"ftyp"


def first_frame(data: bytes) -> Frame:
    """A video file's first frame (BGR), for reading its watermark."""
    with av.open(io.BytesIO(data), "r") as container:
        for frame in container.decode(video=0):
            return cast(Frame, frame.to_ndarray(format="bgr24"))
    raise ClipRefused("has no frames")


def decode_clip(data: bytes, suffix: str, bounds: ClipBounds) -> DecodedClip:
    """Every frame, refusing the clip as soon as it is past a bound (before decoding what it says it holds)."""
    try:
        if suffix in PILLOW_FORMATS:
            return _pillow_clip(data, bounds)
        return _video_clip(data, bounds)
    except ClipRefused:
        raise
    except Exception as exc:  # a decoder's any complaint (Pillow's DecompressionBombError is a bare Exception)
        raise ClipRefused(f"cannot be decoded: {getattr(exc, 'strerror', None) or exc}") from exc


def _pillow_clip(data: bytes, bounds: ClipBounds) -> DecodedClip:
    with PIL.Image.open(io.BytesIO(data)) as image:
        _check_size(image.width, image.height, bounds)
        _check_frames(getattr(image, "n_frames", 1), bounds)
        frames, durations = [], []
        for frame in PIL.ImageSequence.Iterator(image):
            frames.append(cast(Frame, cv2.cvtColor(np.asarray(frame.convert("RGB")), cv2.COLOR_RGB2BGR)))
            durations.append(int(frame.info.get("duration") or GIF_DEFAULT_MS))  # WebP's is set as a frame loads
    starts = tuple(int(v) for v in np.cumsum([0, *durations[:-1]]))  # GIF and WebP start at 0
    timing = Timing(MILLISECONDS, starts, sum(durations))
    _check_seconds(timing, bounds)
    return DecodedClip(frames, timing)


def _video_clip(data: bytes, bounds: ClipBounds) -> DecodedClip:
    with av.open(io.BytesIO(data), "r") as container:
        if not container.streams.video:
            raise ClipRefused("has no video track")
        stream = container.streams.video[0]
        _check_size(stream.codec_context.width, stream.codec_context.height, bounds)
        if stream.frames:
            _check_frames(stream.frames, bounds)
        if container.duration and container.duration / av.time_base > bounds.max_seconds:
            raise ClipPastBound(f"lasts {container.duration / av.time_base:.1f} s, over the {bounds.max_seconds:g}-second "
                              "limit (SWAPAROONY_MAX_CLIP_SECONDS)")
        time_base = stream.time_base or MILLISECONDS
        frames: list[Frame] = []
        starts: list[int] = []
        last = 0
        for frame in container.decode(stream):
            _check_frames(len(frames) + 1, bounds)
            _check_size(frame.width, frame.height, bounds)
            start = frame.pts if frame.pts is not None else (starts[-1] + last if starts else 0)
            starts.append(start)
            last = frame.duration or last or int(1 / (time_base * (stream.average_rate or 12)))
            frames.append(cast(Frame, frame.to_ndarray(format="bgr24")))
        audio = bool(container.streams.audio)
    if not frames:
        raise ClipRefused("has no frames")
    timing = Timing(time_base, tuple(starts), starts[-1] + last)  # as they were: the sound keeps its own times
    _check_seconds(timing, bounds)
    return DecodedClip(frames, timing, audio)


def _check_size(width: int, height: int, bounds: ClipBounds) -> None:
    if width * height > bounds.max_frame_pixels:
        raise ClipPastBound(f"has {width}x{height} frames, over the {bounds.max_frame_pixels:,}-pixel limit per frame "
                          "(SWAPAROONY_MAX_CLIP_FRAME_PIXELS)")


def _check_frames(count: int, bounds: ClipBounds) -> None:
    if count > bounds.max_frames:
        raise ClipPastBound(f"has more than {bounds.max_frames:,} frames (SWAPAROONY_MAX_CLIP_FRAMES)")


def _check_seconds(timing: Timing, bounds: ClipBounds) -> None:
    if timing.seconds > bounds.max_seconds:
        raise ClipPastBound(f"lasts {timing.seconds:.1f} s, over the {bounds.max_seconds:g}-second limit "
                          "(SWAPAROONY_MAX_CLIP_SECONDS)")


def encode_clip(frames: Iterable[Frame], timing: Timing, clip_format: ClipFormat, quality: int,
                sound_from: bytes | None = None) -> bytes:
    """The frames (taken one at a time, so a caller may make them as they go) as a clip with the source's timing;
    MP4 copies the sound track of `sound_from` (the source file)."""
    try:
        if clip_format == "mp4":
            return _mp4(iter(frames), timing, sound_from)
        return _pillow_animation(iter(frames), timing, clip_format, quality)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise EncodeFailed(f"could not encode the clip as {clip_format}: {exc}") from exc


def _mp4(frames: Iterator[Frame], timing: Timing, sound_from: bytes | None) -> bytes:
    """H.264 (yuv420p, which every browser plays: an odd width or height is padded by one repeated pixel)."""
    first = next(frames)
    frames = itertools.chain([first], frames)
    height, width = first.shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=timing.rate, options=H264_QUALITY)
        video.width, video.height, video.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        video.time_base = video.codec_context.time_base = timing.time_base
        sound = _sound(output, sound_from)
        shown = dict(zip(timing.starts, [*timing.starts[1:], timing.end]))
        for frame, start in zip(frames, timing.starts):
            picture = av.VideoFrame.from_ndarray(_even(frame), format="bgr24")
            picture.pts, picture.time_base = start, timing.time_base
            output.mux(_timed(video.encode(picture), shown))
        output.mux(_timed(video.encode(None), shown))
        if sound is not None:
            _copy_sound(output, sound, sound_from or b"")
    return buffer.getvalue()


def _timed(packets: list[av.Packet], shown: dict[int, int]) -> list[av.Packet]:
    """Each packet lasts until the next frame starts (the last until the clip ends, which the muxer cannot guess)."""
    for packet in packets:
        if packet.pts in shown:
            packet.duration = shown[packet.pts] - packet.pts
    return packets


def _even(frame: Frame) -> Frame:
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return cast(Frame, cv2.copyMakeBorder(frame, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE))


def _sound(output: av.container.OutputContainer, source: bytes | None) -> av.audio.stream.AudioStream | None:
    """The output's copy of the source's first sound track, where MP4 can carry its codec."""
    if not source:
        return None
    with av.open(io.BytesIO(source), "r") as container:
        if not container.streams.audio:
            return None
        try:
            return output.add_stream_from_template(container.streams.audio[0])
        except (av.FFmpegError, ValueError) as exc:
            logger.warning("the clip's sound track is left out (%s cannot go in MP4): %s",
                           container.streams.audio[0].codec_context.name, exc)
            return None


def _copy_sound(output: av.container.OutputContainer, sound: av.audio.stream.AudioStream, source: bytes) -> None:
    with av.open(io.BytesIO(source), "r") as container:
        for packet in container.demux(container.streams.audio[0]):
            if packet.dts is None:
                continue
            packet.stream = sound
            output.mux(packet)


def _pillow_animation(frames: Iterator[Frame], timing: Timing, clip_format: ClipFormat, quality: int) -> bytes:
    """Animated WebP (Pillow's writer wants the pictures as a list) or GIF (taken one at a time)."""
    pictures = (PIL.Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)) for frame in frames)
    first = next(pictures)
    buffer = io.BytesIO()
    if clip_format == "webp":
        first.save(buffer, "WEBP", save_all=True, append_images=list(pictures), duration=timing.durations_ms(),
                   loop=0, quality=quality)
    else:
        first.save(buffer, "GIF", save_all=True, append_images=pictures, loop=0, optimize=False,
                   duration=timing.durations_ms(GIF_STEP_MS, GIF_SHORTEST_MS))
    return buffer.getvalue()
