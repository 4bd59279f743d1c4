"""Frames -> PoseSequence outside any node (models.pose_pipeline), with a pose backend written here:
another pose model is one class with ``detect`` and ``estimate``."""
from __future__ import annotations

import math

import numpy as np
import pytest

from wan_animate_kit.models import pose_pipeline as pp
from wan_animate_kit.models.pose_pipeline import (PoseBackend, PoseExtractionError, PoseExtractionStopped,
                                                  extract_pose)

T, H, W = 14, 60, 96


def person(t: int, p: int) -> np.ndarray:
    """Person ``p`` of frame ``t``: a cloud of 133 confident points moving right; person 1 is the
    biggest, person 0 small on the left, person 2 small on the right."""
    rng = np.random.default_rng(100 * t + p)
    cx, cy, spread = (15 + t, 30, 3.0) if p == 0 else (45 + t, 30, 9.0) if p == 1 else (80 - t, 30, 3.0)
    k = np.empty((133, 3), np.float32)
    k[:, 0] = cx + rng.uniform(-spread, spread, 133)
    k[:, 1] = cy + rng.uniform(-2 * spread, 2 * spread, 133)
    k[:, 2] = rng.uniform(0.6, 1.0, 133)
    return k


def people_in(t: int) -> list[int]:
    """Person 1 is missed in frames 4..6 and 11; person 2 appears from frame 3."""
    out = [0]
    if t not in (4, 5, 6, 11):
        out.append(1)
    if t >= 3:
        out.append(2)
    return out


class ScriptedPose:
    """A whole pose 'model' in a few lines: it reads the frame number from the first pixel and
    answers from the script above. Counts its calls."""

    def __init__(self):
        self.calls = []

    def detect(self, frames):
        self.calls.append(("detect", len(frames)))
        out = []
        for f in frames:
            ks = [person(int(f[0, 0, 0]), p) for p in people_in(int(f[0, 0, 0]))]
            out.append(np.array([[k[:, 0].min(), k[:, 1].min(), k[:, 0].max(), k[:, 1].max(), 0.9] for k in ks],
                                np.float32))
        return out

    def estimate(self, frames, boxes):
        self.calls.append(("estimate", len(frames)))
        return [np.stack([person(int(f[0, 0, 0]), p) for p in people_in(int(f[0, 0, 0]))])[:len(b)]
                for f, b in zip(frames, boxes)]


class Frames:
    """The four members extract_pose reads."""

    def __init__(self, t=T, fps=25.0):
        rng = np.random.default_rng(7)
        self.frames = rng.integers(0, 256, (t, H, W, 3), dtype=np.uint8)
        self.frames[:, 0, 0, 0] = np.arange(t)
        self.fps = fps
        self.chunks_read = []

    @property
    def num_frames(self):
        return len(self.frames)

    @property
    def size(self):
        return W, H

    def iter_chunks(self, n):
        for s in range(0, len(self.frames), n):
            self.chunks_read.append(n)
            yield self.frames[s:s + n]


def test_a_new_backend_is_one_class_and_the_sequence_is_tracked_selected_and_held():
    backend = ScriptedPose()
    assert isinstance(backend, PoseBackend)
    src = Frames()
    out = extract_pose(src, backend, person="largest", chunk_frames=4)
    seq = out.pose
    assert (seq.num_frames, seq.width, seq.height, seq.fps) == (T, W, H, 25.0)
    assert seq.num_people == 3 and seq.track_ids == (0, 1, 2)  # columns in order of first appearance
    assert seq.subject == 1  # the largest
    assert out.missing == [4, 5, 6, 11] and out.preview is None
    assert backend.calls == [("detect", 4), ("estimate", 4)] * 3 + [("detect", 2), ("estimate", 2)]
    assert src.chunks_read == [4] * 4
    # the subject: its own points where detected, the last detected frame held where missed ('hold')
    for t in range(T):
        want = person(3 if t in (4, 5, 6) else 10 if t == 11 else t, 1)
        np.testing.assert_array_equal(seq.subject_keypoints[t], want)
    assert seq.subject_detected.tolist() == [t not in (4, 5, 6, 11) for t in range(T)]
    # the other people are theirs, absent frames empty (filling is for the subject only)
    np.testing.assert_array_equal(seq.keypoints[:, 0], np.stack([person(t, 0) for t in range(T)]))
    assert not seq.keypoints[:3, 2].any()
    np.testing.assert_array_equal(seq.keypoints[3:, 2], np.stack([person(t, 2) for t in range(3, T)]))
    assert out.report == (f"{T} frame(s) {W}x{H}, 3 person(s) tracked (ids [0, 1, 2]), subject 1; "
                          "4 frame(s) without the subject: [4, 5, 6, 11]")


def test_chunking_does_not_change_the_result_and_interpolate_fills_linearly():
    runs = [extract_pose(Frames(), ScriptedPose(), person="1", missing_frames="interpolate", chunk_frames=n)
            for n in (1, 5, 100)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.pose.keypoints, runs[0].pose.keypoints)
        assert r.report == runs[0].report
    kps = runs[0].pose.subject_keypoints
    a, b = person(3, 1), person(7, 1)
    for t in (4, 5, 6):  # linear between frames 3 and 7 (all points known on both sides)
        w = (t - 3) / 4
        np.testing.assert_allclose(kps[t], (1 - w) * a + w * b, rtol=0, atol=1e-5)


def test_person_choices_and_smoothing():
    left = extract_pose(Frames(), ScriptedPose(), person="5,30")  # a point: the person at it in frame 0
    assert left.pose.subject == 0
    frac = extract_pose(Frames(), ScriptedPose(), person="0.5,0.5")
    assert frac.pose.subject == 1
    raw = extract_pose(Frames(), ScriptedPose(), smoothing=0.0).pose
    smooth = extract_pose(Frames(), ScriptedPose(), smoothing=0.6).pose
    assert raw.notes == () and any("one-euro" in n for n in smooth.notes)
    assert not np.array_equal(raw.keypoints, smooth.keypoints)
    # one frame (a character image): nothing to smooth
    one = extract_pose(Frames(t=1), ScriptedPose(), smoothing=0.6).pose
    assert one.num_frames == 1 and one.notes == ()


class Never:
    """A backend that must not be reached: settings are checked before any frame is processed."""

    def detect(self, frames):
        raise AssertionError("the backend ran")

    estimate = detect


@pytest.mark.parametrize("kw,name,text", [
    (dict(person="someone"), "person", "largest"),
    (dict(person="-1"), "person", "negative"),
    (dict(person="1,2,3"), "person", "'x,y'"),
    (dict(smoothing=math.nan), "smoothing", "finite number"),
    (dict(smoothing=1.5), "smoothing", "from 0 to 1"),
    (dict(missing_frames="skip"), "missing_frames", "hold, interpolate, raise"),
    (dict(chunk_frames=0), "chunk_frames", ">= 1"),
    (dict(chunk_frames=2.5), "chunk_frames", "whole number"),
])
def test_bad_settings_name_the_setting_before_any_work(kw, name, text):
    src = Frames()
    with pytest.raises(PoseExtractionError, match=text) as err:
        extract_pose(src, Never(), **kw)
    assert err.value.input_name == name and src.chunks_read == []
    assert isinstance(err.value, ValueError)


def test_errors_found_while_running():
    with pytest.raises(PoseExtractionError, match="index 3 is out of range") as err:
        extract_pose(Frames(), ScriptedPose(), person="3")
    assert err.value.input_name == "person"
    with pytest.raises(PoseExtractionError, match=r"4 frame\(s\): 4, 5, 6, 11") as err:
        extract_pose(Frames(), ScriptedPose(), person="1", missing_frames="raise")
    assert err.value.input_name == "missing_frames"

    class Nobody(ScriptedPose):
        def detect(self, frames):
            return [np.zeros((0, 5), np.float32) for _ in frames]

        def estimate(self, frames, boxes):
            return [np.zeros((0, 133, 3), np.float32) for _ in frames]

    with pytest.raises(PoseExtractionError, match=f"no person was found in any of the {T} frame") as err:
        extract_pose(Frames(), Nobody())
    assert err.value.input_name == "source" and "person is visible" in err.value.fix


def test_a_backend_breaking_its_contract_is_named():
    class Short(ScriptedPose):
        def detect(self, frames):
            return super().detect(frames)[:-1]

    with pytest.raises(RuntimeError, match=r"Short.detect returned 3 entries for 4 frame"):
        extract_pose(Frames(), Short(), chunk_frames=4)

    class WrongShape(ScriptedPose):
        def estimate(self, frames, boxes):
            return [k[:, :17] for k in super().estimate(frames, boxes)]

    with pytest.raises(RuntimeError, match=r"WrongShape.estimate gave frame 0 keypoints \(2, 17, 3\)"):
        extract_pose(Frames(), WrongShape())

    src = Frames()
    src.frames = src.frames.astype(np.float32)
    with pytest.raises(ValueError, match="frame 0: expected uint8"):
        extract_pose(src, ScriptedPose())


def test_progress_stop_and_preview(monkeypatch):
    seen = []
    out = extract_pose(Frames(), ScriptedPose(), chunk_frames=6, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(6, T), (12, T), (14, T)]
    asked = []

    def stop_at_second_chunk():
        asked.append(1)
        return len(asked) == 2

    with pytest.raises(PoseExtractionStopped, match="after 6 of 14"):
        extract_pose(Frames(), ScriptedPose(), chunk_frames=6, should_stop=stop_at_second_chunk)

    # preview off (the default): no preview is ever drawn
    monkeypatch.setattr(pp, "preview_frames", lambda *a, **k: pytest.fail("a preview was drawn"))
    assert extract_pose(Frames(), ScriptedPose()).preview is None
    monkeypatch.undo()
    src = Frames()
    shown = extract_pose(src, ScriptedPose(), chunk_frames=4, preview=True)
    np.testing.assert_array_equal(shown.pose.keypoints, out.pose.keypoints)  # the same poses either way
    assert shown.preview.shape == (T, H, W, 3) and shown.preview.dtype == np.uint8  # fits in 384: not shrunk
    # each preview frame is the frame with that frame's detected people drawn by the official renderer
    from wan_animate_kit.preprocess.render import draw_person

    for t in (0, 5):
        want = src.frames[t].copy()
        for p in people_in(t):
            draw_person(want, person(t, p))
        np.testing.assert_array_equal(shown.preview[t], want)


def test_preview_frames_shrink_to_the_preview_side():
    frames = np.full((2, 600, 800, 3), 200, np.uint8)
    out = pp.preview_frames(frames, [np.zeros((0, 133, 3), np.float32)] * 2)
    assert out.shape == (2, 288, 384, 3) and (out == 200).all()
