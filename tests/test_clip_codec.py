"""Clips read and written by imaging/clip_codec.py: their bounds, timing and sound, through the real codecs."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from generated_models import gif_clip, mp4_clip
from swaparoony.imaging.clip_codec import ClipBounds, ClipRefused, decode_clip, encode_clip, moves

FRAMES = [np.full((63, 81, 3), 20 * i, np.uint8) for i in range(6)]


def test_each_bound_refuses_a_clip_with_the_setting_to_change() -> None:
    gif = gif_clip(FRAMES, [100] * 6)
    with pytest.raises(ClipRefused, match=r"more than 5 frames \(SWAPAROONY_MAX_CLIP_FRAMES\)"):
        decode_clip(gif, ".gif", ClipBounds(max_frames=5))
    with pytest.raises(ClipRefused, match=r"lasts 0.6 s, over the 0.5-second limit \(SWAPAROONY_MAX_CLIP_SECONDS\)"):
        decode_clip(gif, ".gif", ClipBounds(max_seconds=0.5))
    with pytest.raises(ClipRefused, match=r"81x63 frames, over the 5,000-pixel limit"):
        decode_clip(gif, ".gif", ClipBounds(max_frame_pixels=5000))
    with pytest.raises(ClipRefused, match=r"more than 5 frames"):
        decode_clip(mp4_clip([np.zeros((64, 64, 3), np.uint8)] * 6), ".mp4", ClipBounds(max_frames=5))
    with pytest.raises(ClipRefused, match=r"^cannot be decoded"):
        decode_clip(b"GIF89a and nothing else", ".gif", ClipBounds())


def test_timing_survives_every_output_format_and_an_odd_size_is_padded_for_h264() -> None:
    clip = decode_clip(gif_clip(FRAMES, [80, 120, 80, 120, 80, 300]), ".gif", ClipBounds())
    for clip_format, suffix in (("mp4", ".mp4"), ("webp", ".webp"), ("gif", ".gif")):
        again = decode_clip(encode_clip(clip.frames, clip.timing, clip_format, 90), suffix, ClipBounds())
        assert again.timing.durations_ms() == [80, 120, 80, 120, 80, 300], clip_format
        assert len(again.frames) == 6
    assert decode_clip(encode_clip(clip.frames, clip.timing, "mp4", 90), ".mp4", ClipBounds()).frames[0].shape == (64, 82, 3)


def test_an_mp4s_sound_is_copied_and_a_still_webp_is_not_a_clip() -> None:
    source = mp4_clip([np.full((64, 64, 3), 9 * i, np.uint8) for i in range(24)])
    clip = decode_clip(source, ".mp4", ClipBounds())
    assert clip.audio and clip.timing.seconds == 2.0
    with av.open(io.BytesIO(encode_clip(clip.frames, clip.timing, "mp4", 90, source))) as container:
        assert [s.codec_context.name for s in container.streams] == ["h264", "aac"]
        assert sum(p.size for p in container.demux(container.streams.audio[0])) > 1000
    animated = encode_clip(clip.frames, clip.timing, "webp", 90)
    assert moves(".webp", animated[:32])
    assert not moves(".webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(20)) and not moves(".png", b"")


def test_frame_times_add_up_to_the_clips_length_and_a_fast_gif_is_at_most_50_fps() -> None:
    thirty = decode_clip(mp4_clip([np.full((64, 64, 3), 8 * i, np.uint8) for i in range(30)], fps=30, sound=False),
                         ".mp4", ClipBounds())
    for clip_format, suffix, length in (("webp", ".webp", 1000), ("gif", ".gif", 1000)):
        again = decode_clip(encode_clip(thirty.frames, thirty.timing, clip_format, 90), suffix, ClipBounds())
        assert sum(again.timing.durations_ms()) == length, clip_format  # 33.3 ms each: not 30 x 30 or 30 x 33
    sixty = decode_clip(mp4_clip([np.full((64, 64, 3), 4 * i, np.uint8) for i in range(60)], fps=60, sound=False),
                        ".mp4", ClipBounds())
    gif = decode_clip(encode_clip(sixty.frames, sixty.timing, "gif", 90), ".gif", ClipBounds())
    assert set(gif.timing.durations_ms()) == {20}  # browsers show 10 ms as 100 ms; 20 ms plays at 50 fps


def test_a_gif_declaring_a_huge_picture_is_refused_not_raised() -> None:
    bomb = b"GIF89a" + (30000).to_bytes(2, "little") * 2 + b"\x00\x00\x00" + b",\x00\x00\x00\x000u0u\x00\x02\x02D\x01\x00;"
    with pytest.raises(ClipRefused):
        decode_clip(bomb, ".gif", ClipBounds())
