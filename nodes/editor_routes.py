"""HTTP routes of the SAM2 Points Editor (``web/points_editor.js``), on the host's PromptServer.

Every route reads only what a run of SAM2 Points Editor put in memory (``points_editor`` sessions,
named by a random token): no path from the client reaches the filesystem.

- ``GET  /wak/points_editor/frame?session=..&index=..``: the frame as a JPEG (longest side <= 1024).
- ``GET  /wak/points_editor/people?session=..&index=..``: the tracked people on that frame: id, box
  around their keypoints, whether it is the subject, and the 8 official keypoint prompts (official:
  wan/modules/animate/preprocess/process_pipepline.py, ProcessPipeline.get_mask), plus whether the
  frame is an official keyframe (default chunks of 400, 4 keyframes).
- ``POST /wak/points_editor/preview_mask`` ``{session, frame, person, points}``: SAM2 on that frame
  alone, prompted with the person's keypoint prompts of the frame and the user points of that person
  on it; returns the mask as a PNG (base64).
"""
from __future__ import annotations

import base64
import io as _io
import logging

import numpy as np

log = logging.getLogger("wan_animate_kit")
PREFIX = "/wak/points_editor"
MAX_SIDE = 1024
BOX_SCORE = 0.3  # keypoints at least this confident make a person's box
_registered = False


def _arg_int(value, name: str, lo: int, hi: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be within {lo}..{hi}, got {v}")
    return v


def frame_jpeg(session, index: int) -> bytes:
    import cv2

    frame = _frame(session, index)
    h, w = frame.shape[:2]
    s = min(1.0, MAX_SIDE / max(w, h))
    if s < 1:
        frame = cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("could not encode the frame")
    return buf.tobytes()


def _frame(session, index: int) -> np.ndarray:
    from .points_editor import session_frame

    return session_frame(session, index)


def people_on_frame(session, index: int) -> dict:
    """The people drawn on frame ``index`` (see module doc); coordinates in source pixels."""
    from ..preprocess.keypoints import hold_invalid_bodies
    from ..preprocess.sam_prompts import chunk_bounds, official_keyframe_offsets, official_keypoint_prompt

    seq = session.pose
    people = []
    for p, tid in enumerate(seq.track_ids):
        kp = seq.keypoints[index, p]
        good = kp[:, 2] >= BOX_SCORE
        detected = bool(seq.detected[index, p]) if seq.detected is not None else bool(good.any())
        if not good.any():
            continue
        x1, y1 = kp[good, :2].min(0)
        x2, y2 = kp[good, :2].max(0)
        body = hold_invalid_bodies(seq.keypoints[:, p])[index] if p == seq.subject else kp
        auto = official_keypoint_prompt(body, session.width, session.height) if (body[:, 2] > 0).any() else []
        people.append({"id": int(tid), "subject": p == seq.subject, "detected": detected,
                       "box": [float(x1), float(y1), float(x2), float(y2)],
                       "auto": [[float(x), float(y)] for x, y in np.asarray(auto).reshape(-1, 2)]})
    keyframe = any(start + k == index for start, stop in chunk_bounds(session.num_frames, 400)
                   for k in official_keyframe_offsets(stop - start, 4))
    return {"index": index, "people": people, "keyframe": keyframe}


def preview_mask(session, frame: int, person: int, points) -> dict:
    """SAM2 on frame ``frame`` alone (see module doc): {"mask": base64 PNG, "width", "height", "points"}."""
    import contextlib

    import cv2

    from ..models.sam2_loader import Sam2Model as LoadedSam2
    from ..models.sam2_loader import sam2_session
    from ..models.sam2_video import iter_segment_frames
    from ..preprocess.sam_prompts import NEGATIVE, POSITIVE, ChunkPrompts
    from .points_editor import parse_editor_points

    if not session.has_sam2:
        raise ValueError("connect a SAM2 Loader to the editor's sam2_model input and run it once")
    ids = tuple(int(t) for t in session.pose.track_ids)
    if person not in ids:
        raise ValueError(f"person {person} is not tracked (ids {list(ids)})")
    pts = parse_editor_points(points, session.num_frames, session.width, session.height, ids)
    info = people_on_frame(session, frame)
    auto = next((p["auto"] for p in info["people"] if p["id"] == person), [])
    user = [p for p in pts if p.frame == frame and p.person == person]
    xy = [list(a) for a in auto] + [[p.x, p.y] for p in user]
    labels = [POSITIVE] * len(auto) + [POSITIVE if p.label == 1 else NEGATIVE for p in user]
    if not xy:
        raise ValueError(f"person {person} has no keypoint and no point on frame {frame}")
    chunk = ChunkPrompts(0, 1, frames={0: (np.asarray(xy, np.float32), np.asarray(labels, np.int32))})
    image = _frame(session, frame)[None]
    model = session.sam2_model
    ctx = (sam2_session(model, video_size=(session.height, session.width)) if isinstance(model, LoadedSam2)
           else contextlib.nullcontext())
    with ctx, contextlib.closing(iter_segment_frames(model, image, [chunk], 1)) as items:
        mask = next(iter(items)).mask
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    return {"mask": base64.b64encode(buf.tobytes()).decode(), "width": session.width, "height": session.height,
            "points": len(xy), "area": int(mask.sum())}


def register() -> None:
    """Add the routes to the host's PromptServer (once)."""
    global _registered
    if _registered:
        return
    from aiohttp import web
    from server import PromptServer

    from .points_editor import get_session

    routes = PromptServer.instance.routes

    def session_and_index(q):
        s = get_session(q.get("session"))
        if s is None:
            raise LookupError("no such editor session: run the SAM2 Points Editor node again")
        return s, _arg_int(q.get("index"), "index", 0, s.num_frames - 1)

    def error(e: Exception):
        status = 404 if isinstance(e, LookupError) else 400
        return web.json_response({"error": str(e)}, status=status)

    @routes.get(PREFIX + "/frame")
    async def _frame_route(request):
        try:
            s, i = session_and_index(request.rel_url.query)
        except (LookupError, ValueError) as e:
            return error(e)
        import asyncio

        try:
            data = await asyncio.get_running_loop().run_in_executor(None, frame_jpeg, s, i)
        except LookupError as e:
            return error(e)
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @routes.get(PREFIX + "/people")
    async def _people_route(request):
        try:
            s, i = session_and_index(request.rel_url.query)
        except (LookupError, ValueError) as e:
            return error(e)
        return web.json_response(people_on_frame(s, i))

    @routes.post(PREFIX + "/preview_mask")
    async def _preview_route(request):
        import asyncio

        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            s = get_session(body.get("session"))
            if s is None:
                raise LookupError("no such editor session: run the SAM2 Points Editor node again")
            frame = _arg_int(body.get("frame"), "frame", 0, s.num_frames - 1)
            if PromptServer.instance.prompt_queue.get_tasks_remaining():
                # SAM2 may be running in the queue right now: one model, one user at a time
                return web.json_response({"error": "the queue is running: preview the mask when it is done"},
                                         status=409)
            person = _arg_int(body.get("person"), "person", -(2 ** 31), 2 ** 31)
            result = await asyncio.get_running_loop().run_in_executor(
                None, preview_mask, s, frame, person, body.get("points") or [])
        except (LookupError, ValueError) as e:
            return error(e)
        except Exception as e:  # a SAM2 failure is reported to the editor, not as a bare 500
            log.exception("Wan-Animate Kit points editor: preview mask failed")
            return web.json_response({"error": f"SAM2 failed: {e}"}, status=500)
        return web.json_response(result)

    _registered = True
