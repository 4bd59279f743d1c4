"""The official driving-video frame-rate rule (preprocess.frame_rate), against a plain re-statement."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.preprocess.frame_rate import (OFFICIAL_FPS, official_frame_indices, official_frame_num,
                                                   official_resample, official_target_count, pick_frames)

NTSC = 30000 / 1001  # what decord's get_avg_fps returns for a 29.97 fps file
SOURCES = (24.0, 25.0, NTSC, 30.0, 50.0, 60.0, 24000 / 1001, 59.94005994005994)


def reference(frame_num: int, video_fps: float, fps: float, clip_length: int | None = None) -> list[int]:
    """The official preprocessing re-stated with Python scalars: the clip length from
    ProcessPipeline.__call__, then each output time i/fps turned into a source position, rounded
    half to even (Python's round, like np.round) and clipped into the source."""
    if fps == -1:
        fps = video_fps
    if clip_length is None:
        clip_length = int(frame_num / video_fps * fps)
    out = []
    for i in range(clip_length):
        position = round(i / fps * video_fps)
        out.append(min(max(position, 0), frame_num - 1))
    return out


@pytest.mark.parametrize("video_fps", SOURCES)
@pytest.mark.parametrize("frame_num", [1, 2, 3, 7, 13, 29, 57, 101, 123, 205, 246, 299, 1001])
def test_indices_match_the_official_rule(video_fps, frame_num):
    got = official_resample(frame_num, video_fps, OFFICIAL_FPS)
    assert got.dtype == np.int64
    assert got.tolist() == reference(frame_num, video_fps, 30)
    assert official_target_count(frame_num, video_fps, 30) == len(reference(frame_num, video_fps, 30))


@pytest.mark.parametrize("video_fps", SOURCES)
def test_source_rate_minus_one_is_the_official_fps_minus_one(video_fps):
    for n in (1, 5, 29, 61, 122, 123):
        assert official_resample(n, video_fps, -1).tolist() == reference(n, video_fps, -1)


def test_hand_worked_examples():
    # 60 fps: every other frame; 9 frames make int(4.5) = 4
    assert official_resample(9, 60.0, 30).tolist() == [0, 2, 4, 6]
    # 24 fps: 9 frames -> int(11.25) = 11, every fourth source frame shown twice
    assert official_resample(9, 24.0, 30).tolist() == [0, 1, 2, 2, 3, 4, 5, 6, 6, 7, 8]
    # 30 fps to 30 fps is the identity for these lengths
    assert official_resample(30, 30.0, 30).tolist() == list(range(30))
    # 29.97 fps: 300 frames make int(300.3) = 300, the identity; 1001 frames make int(1002.001) = 1002,
    # source frame 500 shown twice (output frames 500 and 501: positions 499.5 -> 500 and 500.499 -> 500)
    assert official_resample(300, NTSC, 30).tolist() == list(range(300))
    ntsc = official_resample(1001, NTSC, 30)
    assert ntsc.tolist() == list(range(501)) + list(range(500, 1001))


def test_rounding_is_half_to_even():
    # 25 fps: output frame 3 sits at source position 2.5 -> 2 (not 3), 9 -> 7.5 -> 8, 15 -> 12.5 -> 12
    got = official_resample(25, 25.0, 30)
    assert got[3] == 2 and got[9] == 8 and got[15] == 12
    assert got.tolist()[:16] == [0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 12]


def test_float_arithmetic_can_drop_the_last_frame_as_the_official_code_does():
    # int(123 / 30.0 * 30) == 122: the official clip of a 123-frame 30 fps video has 122 frames
    assert official_target_count(123, 30.0, 30) == 122 == int(123 / 30.0 * 30)
    assert official_resample(123, 30.0, 30).tolist() == list(range(122))
    assert official_target_count(246, 60.0, 30) == 122  # 123 in exact arithmetic
    assert official_target_count(196, 24.0, 30) == 244  # 245 in exact arithmetic
    assert official_target_count(29, 25.0, -1) == 28  # even the official "source rate"


def test_fewer_source_frames_than_the_clip_needs_repeat_the_last_frame():
    got = official_frame_indices(5, 24.0, 20, 30)
    assert got.tolist() == reference(5, 24.0, 30, clip_length=20)
    assert got.max() == 4 and got.tolist()[-8:] == [4] * 8
    assert official_frame_indices(4, 60.0, 10, 30).tolist() == [0, 2, 3, 3, 3, 3, 3, 3, 3, 3]
    assert official_frame_indices(7, 30.0, 0, 30).tolist() == []


def test_other_target_rates_follow_the_same_rule():
    for fps in (12, 16, 24, 25, 60, 23.976):
        for n in (1, 11, 48, 97):
            assert official_resample(n, 30.0, fps).tolist() == reference(n, 30.0, fps)


def test_too_short_a_video_gives_no_frame():
    assert official_target_count(1, 60.0, 30) == 0 and official_resample(1, 60.0, 30).tolist() == []
    assert official_resample(1, 24.0, 30).tolist() == [0]


def test_bad_rates_are_errors():
    for bad in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="video_fps"):
            official_target_count(10, bad, 30)
        with pytest.raises(ValueError, match="fps"):
            official_resample(10, 30.0, bad)
    with pytest.raises(ValueError, match="frame_num"):
        official_frame_indices(0, 30.0, 3, 30)


def test_frame_num_trusts_the_duration_only_past_ten_percent():
    # the official check: expected = int(end * fps + 0.5); |count - expected| / count > 0.1 -> expected
    def restated(count, fps, end):
        expected = int(float(np.float32(end)) * fps + 0.5)
        return expected if abs((count - expected) / count) > 0.1 else count

    assert official_frame_num(100, 30.0, None) == 100
    assert official_frame_num(100, 30.0, 100 / 30) == 100
    assert official_frame_num(100, 30.0, 110 / 30) == 100  # exactly 10 %: kept
    assert official_frame_num(100, 30.0, 111 / 30) == 111
    assert official_frame_num(100, 30.0, 80 / 30) == 80
    for count, fps, end in ((100, 25.0, 4.02), (90, NTSC, 3.3366), (10, 24.0, 0.47), (300, 60.0, 4.4)):
        assert official_frame_num(count, fps, end) == restated(count, fps, end)
    with pytest.raises(ValueError, match="no frames"):
        official_frame_num(0, 30.0, 1.0)


def frames(n, h=2, w=3):
    return (np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, h, w, 3), np.uint8)).copy()


def chunked(arr, sizes):
    pos = 0
    for s in sizes:
        yield arr[pos:pos + s]
        pos += s
    if pos < len(arr):
        yield arr[pos:]


def drain(gen):
    parts = []
    while True:
        try:
            parts.append(next(gen))
        except StopIteration as stop:
            return parts, stop.value


@pytest.mark.parametrize("sizes", [[32], [1] * 20, [3, 7, 1, 9], [20]])
def test_pick_frames_streams_the_wanted_frames(sizes):
    src = frames(20)
    wanted = official_frame_indices(20, 24.0, official_target_count(20, 24.0, 30), 30)
    parts, missing = drain(pick_frames(chunked(src, sizes), wanted, chunk=4))
    assert missing == 0 and all(1 <= len(p) <= 4 for p in parts)
    got = np.concatenate(parts)
    assert got[:, 0, 0, 0].tolist() == wanted.tolist()
    assert got.shape == (len(wanted), 2, 3, 3)


def test_pick_frames_stops_reading_after_the_last_wanted_frame():
    read = []

    def source():
        try:
            for k in range(10):
                read.append(k)
                yield frames(10)[k:k + 1]
        finally:
            read.append("closed")

    parts, missing = drain(pick_frames(source(), [0, 2, 4], chunk=8))
    assert np.concatenate(parts)[:, 0, 0, 0].tolist() == [0, 2, 4] and missing == 0
    assert read == [0, 1, 2, 3, 4, "closed"]


def test_pick_frames_repeats_the_last_decoded_frame_when_the_source_ends_early():
    parts, missing = drain(pick_frames(chunked(frames(5), [2, 2]), [0, 3, 4, 6, 8, 9], chunk=4))
    assert np.concatenate(parts)[:, 0, 0, 0].tolist() == [0, 3, 4, 4, 4, 4] and missing == 3
    with pytest.raises(ValueError, match="no frames"):
        drain(pick_frames(iter([]), [0], chunk=4))
    assert drain(pick_frames(iter([]), [], chunk=4)) == ([], 0)


def test_pick_frames_rejects_unordered_indices():
    with pytest.raises(ValueError, match="non-decreasing"):
        drain(pick_frames(chunked(frames(5), [5]), [2, 1]))
    with pytest.raises(ValueError, match="non-negative"):
        drain(pick_frames(chunked(frames(5), [5]), [-1, 1]))
