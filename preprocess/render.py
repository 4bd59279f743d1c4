"""The official skeleton drawing (official: wan/modules/animate/preprocess/
human_visualization.py, draw_aapose_by_meta_new), on numpy RGB canvases.

One frame: black uint8 RGB canvas; the 20-point body of :func:`to_body20`; each limb a filled
ellipse (``cv2.ellipse2Poly``, half-axes (length/2, stick width), angle of the limb) in its colour
x 0.6, drawn when both end scores reach the threshold; each joint a filled circle of radius stick
width in its full colour; hands as thin ``cv2.line`` edges in an HSV rainbow with blue joints; head
points (nose, eyes, ears) drawn, face landmarks never. Stick width is
``max(int(min(H, W) / 200) - 1, 1)`` (2 at 720p), the hand width ``max(stick // 2, 1)``.

Sequences drawn at another canvas size are placed by moving the keypoints, not by resizing drawn
images, so lines stay crisp: with the official keypoint letterbox (``AAPoseMeta.padding_resize2``,
the placement of ``padding_resize``) or stretched with the official rescale ``x / W * W'``
(:func:`..resolution.scale_keypoints`).

Sequences are drawn with the official body hold by default: a frame whose every 20-point body joint
has x < 0 or y < 0 (a failed detection) shows the body the previous frame was drawn with, scores
included; hands stay the frame's own. The official pipeline draws the metas that went through
that hold, in Animation without retargeting and in Replacement (official:
wan/modules/animate/preprocess/process_pipepline.py, ProcessPipeline.__call__, which draws
``AAPoseMeta.from_humanapi_meta`` of the ``Pose2d`` output, and pose2d_utils.py,
load_pose_metas_from_kp2ds_seq, where the hold happens). Retargeted poses are drawn as they are:
the retarget already took the held bodies, and the official draws its output unchanged.
"""
from __future__ import annotations

import colorsys
import math
from typing import Iterator

import cv2
import numpy as np

from .keypoints import (B20_L_EAR, B20_L_EYE, B20_NOSE, B20_R_EAR, B20_R_EYE, BODY20_COLORS,
                        BODY20_LIMBS, HAND_EDGES, hold_invalid_bodies, to_body20)
from .pose_types import LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND, PoseSequence
from .resolution import letterbox_keypoints, scale_keypoints

HEAD_POINTS = frozenset({B20_NOSE, B20_R_EYE, B20_L_EYE, B20_R_EAR, B20_L_EAR})
LIMB_DIM = 0.6
HAND_JOINT_COLOR = (0, 0, 255)  # RGB blue
_EDGE_EPS = 0.01  # the official renderer skips hand points whose pixel x or y is <= 0.01

LIMB_COLORS = [tuple(int(float(c) * LIMB_DIM) for c in BODY20_COLORS[i]) for i in range(len(BODY20_LIMBS))]
JOINT_COLORS = [tuple(int(c) for c in col) for col in BODY20_COLORS]
HAND_EDGE_COLORS = [tuple(int(round(v * 255)) for v in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0))
                    for i in range(len(HAND_EDGES))]


def stick_width_for(width: int, height: int) -> int:
    """The official 'v2' body stick width for a canvas: ``max(int(min(H, W) / 200) - 1, 1)``."""
    return max(int(min(width, height) / 200) - 1, 1)


def hand_width_for(width: int, height: int) -> int:
    """Hand line thickness (and hand joint radius): ``max(stick // 2, 1)``."""
    return max(stick_width_for(width, height) // 2, 1)


def _check_kps(kps133: np.ndarray) -> np.ndarray:
    kps = np.asarray(kps133, dtype=np.float32)
    if kps.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"render_pose_frame expects one person's keypoints [133, 3], got {kps.shape}")
    return kps


def draw_body(canvas: np.ndarray, kps133: np.ndarray, threshold: float = 0.5, draw_head: bool = True,
              stick_width: int | None = None) -> np.ndarray:
    """Draw the 20-point body of one person onto ``canvas`` (RGB uint8, modified in place)."""
    h, w = canvas.shape[:2]
    sw = stick_width if stick_width is not None else stick_width_for(w, h)
    body = to_body20(_check_kps(kps133))
    ok = body[:, 2] >= threshold
    for i, (a, b) in enumerate(BODY20_LIMBS):
        if not (ok[a] and ok[b]):
            continue
        if not draw_head and (a in HEAD_POINTS or b in HEAD_POINTS):
            continue
        xa, ya = float(body[a, 0]), float(body[a, 1])
        xb, yb = float(body[b, 0]), float(body[b, 1])
        length = math.hypot(xa - xb, ya - yb)
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        centre = (int((xa + xb) / 2), int((ya + yb) / 2))
        poly = cv2.ellipse2Poly(centre, (int(length / 2), sw), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, LIMB_COLORS[i])
    for j in range(body.shape[0]):
        if not ok[j] or (not draw_head and j in HEAD_POINTS):
            continue
        cv2.circle(canvas, (int(body[j, 0]), int(body[j, 1])), sw, JOINT_COLORS[j], thickness=-1)
    return canvas


def draw_hand(canvas: np.ndarray, hand21: np.ndarray, threshold: float = 0.5,
              hand_width: int | None = None) -> np.ndarray:
    """Draw one 21-point hand onto ``canvas`` (RGB uint8, modified in place)."""
    h, w = canvas.shape[:2]
    hw = hand_width if hand_width is not None else hand_width_for(w, h)
    hand = np.asarray(hand21, dtype=np.float32)
    px = [(int(x), int(y)) for x, y in hand[:, :2]]
    ok = [(c >= threshold and p[0] > _EDGE_EPS and p[1] > _EDGE_EPS) for c, p in zip(hand[:, 2], px)]
    for e, (a, b) in enumerate(HAND_EDGES):
        if ok[a] and ok[b]:
            cv2.line(canvas, px[a], px[b], HAND_EDGE_COLORS[e], thickness=hw)
    for p, good in zip(px, ok):
        if good:
            cv2.circle(canvas, p, hw, HAND_JOINT_COLOR, thickness=-1)
    return canvas


def draw_person(canvas: np.ndarray, kps133: np.ndarray, threshold: float = 0.5, draw_hands: bool = True,
                draw_head: bool = True, stick_width: int | None = None,
                hand_width: int | None = None) -> np.ndarray:
    """Body, then both hands, of one person onto ``canvas`` (in place). Face landmarks are never drawn."""
    kps = _check_kps(kps133)
    draw_body(canvas, kps, threshold, draw_head, stick_width)
    if draw_hands:
        draw_hand(canvas, kps[LEFT_HAND], threshold, hand_width)
        draw_hand(canvas, kps[RIGHT_HAND], threshold, hand_width)
    return canvas


def keypoints_problem(kps: np.ndarray) -> str:
    """Why keypoints [..., 133, 3] cannot be drawn ('' when they can): a NaN/infinite score, or a
    NaN/infinite coordinate on a point with a positive score (unscored points are never drawn)."""
    k = np.asarray(kps, dtype=np.float32)
    if k.ndim < 2 or k.shape[-1] != 3:
        return f"keypoints must be [..., 3] (x, y, score), got {k.shape}"
    score = k[..., 2]
    bad = ~np.isfinite(score) | ((score > 0) & ~np.isfinite(k[..., :2]).all(axis=-1))
    if not bad.any():
        return ""
    where = np.argwhere(bad)[0]
    at = f" (first at frame {where[0]})" if k.ndim >= 4 else ""
    return f"{int(bad.sum())} keypoint(s) have NaN or infinite values{at}"


def render_pose_frame(kps133: np.ndarray, width: int, height: int, threshold: float = 0.5,
                      draw_hands: bool = True, draw_head: bool = True, stick_width: int | None = None,
                      hand_width: int | None = None) -> np.ndarray:
    """A black ``height`` x ``width`` RGB uint8 canvas with one person's (or several people's) skeleton.

    ``kps133`` is [133, 3] or [P, 133, 3] in canvas pixels. ``stick_width``/``hand_width`` override the
    official widths (None = official; a hand width of 0 leaves the hands out).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"render_pose_frame needs a positive canvas, got {width}x{height}")
    kps = np.asarray(kps133, dtype=np.float32)
    people = kps[None] if kps.ndim == 2 else kps
    if people.ndim != 3:
        raise ValueError(f"render_pose_frame expects [133, 3] or [P, 133, 3] keypoints, got {kps.shape}")
    problem = keypoints_problem(people)
    if problem:
        raise ValueError(f"render_pose_frame: {problem}")
    if hand_width == 0:
        draw_hands = False
    canvas = np.zeros((int(height), int(width), 3), np.uint8)
    for person in people:
        draw_person(canvas, person, threshold, draw_hands, draw_head, stick_width, hand_width)
    return canvas


def official_body_hold(seq: PoseSequence) -> bool:
    """Whether the official drawing of ``seq`` applies the body hold (see the module doc): yes for
    extracted or imported poses, no for retargeted ones (held before retargeting)."""
    return not seq.retargeted


class BodyHold:
    """The official body hold streamed over consecutive chunks [t, ..., 133, 3] of one sequence.

    Each call returns the chunk with every failed body (see ``keypoints.invalid_body_frames``)
    replaced by the body the previous frame ended up with; the last frame's body is carried into
    the next call, so drawing chunk by chunk equals holding the whole sequence at once. A failed
    first frame of the sequence keeps its own body (there is nothing before it).
    """

    def __init__(self):
        self._last: np.ndarray | None = None

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        kps = np.asarray(chunk, dtype=np.float32)
        if kps.shape[0] == 0:
            return kps.copy()
        if self._last is not None and self._last.shape != kps.shape[1:]:
            raise ValueError(f"BodyHold: chunk frames are {kps.shape[1:]}, earlier ones {self._last.shape}")
        held = hold_invalid_bodies(kps if self._last is None else np.concatenate([self._last[None], kps]))
        if self._last is not None:
            held = held[1:]
        self._last = held[-1].copy()
        return held


def _people_keypoints(seq: PoseSequence, people: str) -> np.ndarray:
    """[T, P', 133, 3] keypoints of the drawn people on the sequence's own canvas."""
    if people not in ("subject", "all"):
        raise ValueError(f"people must be 'subject' or 'all', got {people!r}")
    if seq.num_people == 0:
        return np.zeros((seq.num_frames, 0, NUM_KEYPOINTS, 3), np.float32)
    return seq.keypoints[:, seq.subject:seq.subject + 1] if people == "subject" else seq.keypoints


def _onto_canvas(kps: np.ndarray, seq: PoseSequence, width: int, height: int, letterbox: bool) -> np.ndarray:
    if (width, height) == (seq.width, seq.height) or kps.shape[1] == 0:
        return kps
    move = letterbox_keypoints if letterbox else scale_keypoints
    return move(kps, seq.width, seq.height, width, height)


def sequence_keypoints_for_canvas(seq: PoseSequence, width: int | None = None, height: int | None = None,
                                  letterbox: bool = True, people: str = "subject",
                                  hold_invalid: bool | None = False) -> np.ndarray:
    """[T, P', 133, 3] keypoints of ``seq`` moved onto a ``width`` x ``height`` canvas.

    ``people``: 'subject' (the subject only) or 'all'. ``letterbox`` places them as the official
    ``padding_resize`` would; otherwise they are stretched to the canvas. ``hold_invalid``: apply
    the official body hold (see the module doc) on the sequence's own canvas before moving (True),
    not (False: each frame's own keypoints), or as the official drawing does for this sequence
    (None: :func:`official_body_hold`).
    """
    kps = _people_keypoints(seq, people)
    width = int(width or seq.width)
    height = int(height or seq.height)
    if (official_body_hold(seq) if hold_invalid is None else hold_invalid) and kps.shape[1]:
        kps = hold_invalid_bodies(kps)
    return _onto_canvas(kps, seq, width, height, letterbox)


def iter_pose_chunks(seq: PoseSequence, chunk_frames: int = 16, width: int | None = None,
                     height: int | None = None, letterbox: bool = True, threshold: float = 0.5,
                     draw_hands: bool = True, draw_head: bool = True, people: str = "subject",
                     stick_width: int | None = None, hand_width: int | None = None,
                     hold_invalid: bool | None = None) -> Iterator[np.ndarray]:
    """Yield the skeleton video as uint8 [k, H, W, 3] chunks of ``chunk_frames`` frames (the last may
    be shorter). ``hold_invalid`` as in :func:`sequence_keypoints_for_canvas`, default None: the
    official body hold for extracted poses, carried from chunk to chunk (:class:`BodyHold`)."""
    if not isinstance(chunk_frames, (int, np.integer)) or isinstance(chunk_frames, bool) or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a whole number >= 1, got {chunk_frames!r}")
    kps = _people_keypoints(seq, people)
    w, h = int(width or seq.width), int(height or seq.height)
    hold = BodyHold() if (official_body_hold(seq) if hold_invalid is None else hold_invalid) and kps.shape[1] \
        else None
    for s in range(0, seq.num_frames, int(chunk_frames)):
        part = kps[s:s + int(chunk_frames)]
        part = _onto_canvas(hold(part) if hold is not None else part, seq, w, h, letterbox)
        yield np.stack([render_pose_frame(k, w, h, threshold, draw_hands, draw_head, stick_width, hand_width)
                        for k in part])


def iter_pose_frames(seq: PoseSequence, width: int | None = None, height: int | None = None,
                     letterbox: bool = True, threshold: float = 0.5, draw_hands: bool = True,
                     draw_head: bool = True, people: str = "subject", stick_width: int | None = None,
                     hand_width: int | None = None, hold_invalid: bool | None = None) -> Iterator[np.ndarray]:
    """Yield one RGB uint8 [H, W, 3] skeleton frame per pose frame (see :func:`render_pose_sequence`)."""
    for chunk in iter_pose_chunks(seq, 1, width, height, letterbox, threshold, draw_hands, draw_head, people,
                                  stick_width, hand_width, hold_invalid):
        yield chunk[0]


def render_pose_sequence(seq: PoseSequence, width: int | None = None, height: int | None = None,
                         letterbox: bool = True, threshold: float = 0.5, draw_hands: bool = True,
                         draw_head: bool = True, people: str = "subject", stick_width: int | None = None,
                         hand_width: int | None = None, hold_invalid: bool | None = None) -> np.ndarray:
    """All frames of ``seq`` drawn as a uint8 array [T, H, W, 3] (defaults: the sequence's own canvas).

    Drawing at another size letterboxes the keypoints (official ``padding_resize`` placement) or
    stretches them (``letterbox=False``); widths follow the output canvas. ``hold_invalid``: the
    official body hold (None, default: on for extracted poses, off for retargeted ones; see the
    module doc), True or False. For long videos prefer :func:`iter_pose_frames` or
    :func:`iter_pose_chunks`, which hold one frame or chunk at a time.
    """
    w, h = int(width or seq.width), int(height or seq.height)
    out = np.empty((seq.num_frames, h, w, 3), np.uint8)
    frames = iter_pose_frames(seq, width, height, letterbox, threshold, draw_hands, draw_head, people,
                              stick_width, hand_width, hold_invalid)
    for t, frame in enumerate(frames):
        out[t] = frame
    return out
