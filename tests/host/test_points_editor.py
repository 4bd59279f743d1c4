"""SAM2 Points Editor: the node's JSON, its routes, and the in-node editor in the real frontend.

The browser test drives headless Chromium (tests/frontend_driver.py) on the test server: the shipped
Replacement workflow is loaded, a SAM2 Points Editor is wired between its Pose Extraction / video /
SAM2 Loader and its SAM2 Character Segmentation (tiny models, the 9-frame test clip with the tiny
detector's two people), and the editor, then the segmentation (its mask to a Save Image), are queued
from the page, so the editor gets its session from the node's own run. Clicks are real mouse
events (CDP) at screen positions computed here from the canvas rectangle and the frame size.
"""
from __future__ import annotations

import json
import os
import pathlib
import time

import numpy as np
import pytest

pytestmark = pytest.mark.host

ROOT = pathlib.Path(__file__).resolve().parents[2]
W, H, FRAMES = 96, 64, 9  # tests/models_for_prompt.py's driving.mp4


# --- the node alone (in-process host) --------------------------------------------------------------
def _pose(n=4, w=W, h=H, ids=(1, 2), subject=0):
    from wan_animate_kit.preprocess.pose_types import PoseSequence

    kps = np.zeros((n, len(ids), 133, 3), np.float32)
    for p in range(len(ids)):
        kps[:, p, :, 0] = 10 + 40 * p + np.arange(133) % 20
        kps[:, p, :, 1] = 5 + np.arange(133) % 50
        kps[:, p, :, 2] = 0.9
    return PoseSequence(keypoints=kps, width=w, height=h, track_ids=tuple(ids), subject=subject,
                        detected=np.ones((n, len(ids)), bool))


def _run(points, n=4, subject=0):
    import torch
    from wan_animate_kit.nodes.points_editor import Sam2PointsEditor

    images = torch.rand(n, H, W, 3)
    return Sam2PointsEditor.execute(pose=_pose(n, subject=subject), points=points, images=images)


def test_subject_points_go_to_the_segmentation_inputs(host):
    pts = [{"frame": 2, "x": 10.5, "y": 20, "label": 1, "person": 1},
           {"frame": 2, "x": 30, "y": 40.25, "label": 0, "person": 1},
           {"frame": 1, "x": 70, "y": 10, "label": 1, "person": 2}]  # the other person's: kept, not output
    out = _run(json.dumps(pts))
    pos, neg, frame = out.result
    assert json.loads(pos) == [{"x": 10.5, "y": 20, "frame": 2}] and json.loads(neg) == [{"x": 30, "y": 40.25, "frame": 2}]
    assert frame == 2
    info = out.ui["wak_points_editor"][0]
    assert info["frames"] == 4 and (info["width"], info["height"]) == (W, H)
    assert info["people"] == [1, 2] and info["subject"] == 1 and info["preview_mask"] is False
    # the segmentation node reads exactly those strings
    from wan_animate_kit.preprocess.sam_prompts import parse_points_json
    assert parse_points_json(pos).tolist() == [[10.5, 20.0]]
    # subject = the second person: their point only
    pos, neg, frame = _run(json.dumps(pts), subject=1).result
    assert json.loads(pos) == [{"x": 70, "y": 10, "frame": 1}] and neg == "" and frame == 1
    # the subject's points on several frames: each keeps its frame, points_frame is the first
    more = pts + [{"frame": 0, "x": 1, "y": 2, "label": 0, "person": 1}]
    pos, neg, frame = _run(json.dumps(more)).result
    assert json.loads(neg) == [{"x": 30, "y": 40.25, "frame": 2}, {"x": 1, "y": 2, "frame": 0}] and frame == 0


@pytest.mark.parametrize("text", ["", "[]", "[{}]"])
def test_no_points_leave_the_official_segmentation(host, text):
    assert _run(text).result == ("", "", 0)


@pytest.mark.parametrize("points, words", [
    ("[{", "not valid JSON"),
    ('[{"x": 1}]', "has no y"),
    ('[{"frame": 4, "x": 1, "y": 1}]', "frames 0..3"),
    ('[{"frame": 0.5, "x": 1, "y": 1}]', "frame 0.5"),
    (f'[{{"x": {W}, "y": 1}}]', "outside the 96x64"),
    ('[{"x": 1, "y": -0.5}]', "outside"),
    ('[{"x": 1, "y": 1, "label": 2}]', "label"),
    ('[{"x": 1, "y": 1, "person": 7}]', "person 7"),
    ('[{"x": "1", "y": 1}]', "x must be a number"),
])
def test_bad_points_name_the_widget(host, points, words):
    from wan_animate_kit.nodes.common import InputError

    with pytest.raises(InputError) as e:
        _run(points)
    msg = str(e.value)
    assert "SAM2 Points Editor" in msg and "points" in msg and words in msg, msg


def test_pose_of_another_video_is_refused(host):
    import torch
    from wan_animate_kit.nodes.common import InputError
    from wan_animate_kit.nodes.points_editor import Sam2PointsEditor

    with pytest.raises(InputError, match="pose"):
        Sam2PointsEditor.execute(pose=_pose(5), points="[]", images=torch.rand(4, H, W, 3))


def test_people_route_data_and_frames(host):
    """Boxes around each person's keypoints, the official 8 prompt points (truncated pixels), keyframes."""
    import torch
    from wan_animate_kit.nodes import editor_routes
    from wan_animate_kit.nodes.points_editor import get_session

    images = (torch.arange(8).float() / 8)[:, None, None, None].expand(8, H, W, 3).contiguous()
    from wan_animate_kit.nodes.points_editor import Sam2PointsEditor
    pose = _pose(8)
    out = Sam2PointsEditor.execute(pose=pose, points="[]", images=images)
    s = get_session(out.ui["wak_points_editor"][0]["session"])
    info = editor_routes.people_on_frame(s, 5)
    assert [p["id"] for p in info["people"]] == [1, 2] and info["people"][0]["subject"]
    kp = pose.keypoints[5, 1]
    assert info["people"][1]["box"] == [kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max()]
    # the official prompt: nose, shoulder midpoint, R/L shoulder, R/L hip, R/L ankle (COCO 0, 5/6, 6, 5, 12,
    # 11, 16, 15), each normalised by the canvas in float32 (the pair mean too), times the canvas, truncated
    k = pose.keypoints[5, 0, :, :2] / np.array([W, H], np.float32)
    ref = [k[0], (k[5] + k[6]) / np.float32(2), k[6], k[5], k[12], k[11], k[16], k[15]]
    ref = [[float(int(float(x) * W)), float(int(float(y) * H))] for x, y in ref]
    assert info["people"][0]["auto"] == ref
    # 8 frames, one chunk: official keyframes 0, 2, 4, 6
    assert [editor_routes.people_on_frame(s, i)["keyframe"] for i in range(8)] == [True, False] * 4
    jpeg = editor_routes.frame_jpeg(s, 3)
    import cv2
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (H, W, 3) and abs(float(frame.mean()) - 255 * 3 / 8) < 3


# --- the routes, on the test server ------------------------------------------------------------------
def _editor_prompt(tiny_models, sam2=True) -> dict:
    p = {"1": {"class_type": "LoadVideo", "inputs": {"file": "driving.mp4"}},
         "2": {"class_type": "WAK_PoseModelLoader",
               "inputs": {"detector": tiny_models["detector"].name, "pose_model": tiny_models["vitpose"].name,
                          "device": "cpu", "batch_size": 0, "bgr_like_official": True}},
         "3": {"class_type": "WAK_PoseExtract", "inputs": {"pose_models": ["2", 0], "video": ["1", 0],
                                                         "person": "largest", "smoothing": 0.0,
                                                         "missing_frames": "hold", "chunk_frames": 32}},
         "5": {"class_type": "WAK_Sam2PointsEditor", "inputs": {"pose": ["3", 0], "video": ["1", 0], "points": "[]"}}}
    if sam2:
        p["4"] = {"class_type": "WAK_Sam2Loader", "inputs": {"checkpoint": tiny_models["sam2"].name, "device": "cpu",
                                                           "dtype": "fp32", "image_size": 128}}
        p["5"]["inputs"]["sam2_model"] = ["4", 0]
    return p


def _with_defaults(server, prompt: dict) -> dict:
    """Required widget inputs the prompt leaves out take their defaults (the nodes may gain inputs)."""
    for node in prompt.values():
        spec = server.get_json(f"/object_info/{node['class_type']}")[node["class_type"]]["input"]["required"]
        for name, value in spec.items():
            if name not in node["inputs"] and len(value) > 1 and isinstance(value[1], dict) and "default" in value[1]:
                node["inputs"][name] = value[1]["default"]
    return prompt


def _status(server, route: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(server.url + route, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_routes_serve_only_the_sessions_frames_and_preview_one_frame(server, tiny_models):
    import cv2
    from models_for_prompt import write_inputs

    if "sam2" not in tiny_models:
        pytest.skip("the sam2 package is not installed")
    write_inputs(server.base / "input")
    info = server.run_prompt(_with_defaults(server, _editor_prompt(tiny_models)))["outputs"]["5"]["wak_points_editor"][0]
    sid, subject = info["session"], info["subject"]
    assert (info["width"], info["height"], info["frames"]) == (W, H, FRAMES) and info["preview_mask"]
    jpeg = server.get_bytes(f"/wak/points_editor/frame?session={sid}&index=4")
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (H, W, 3)
    assert _status(server, f"/api/wak/points_editor/frame?session={sid}&index=0") == 200  # the frontend's prefix
    assert _status(server, f"/wak/points_editor/frame?session={sid}&index={FRAMES}") == 400
    assert _status(server, f"/wak/points_editor/frame?session={sid}&index=x") == 400
    for bad in ("nope", "../../../etc/passwd", "%2Fetc%2Fpasswd", ""):  # no client path reaches a file
        assert _status(server, f"/wak/points_editor/frame?session={bad}&index=0") == 404
    people = server.get_json(f"/wak/points_editor/people?session={sid}&index=0")
    assert len(people["people"]) == 2 and people["keyframe"] is True
    assert sum(p["subject"] for p in people["people"]) == 1

    def preview(points, frame=0, person=subject):
        return server.post_json("/wak/points_editor/preview_mask",
                                {"session": sid, "frame": frame, "person": person, "points": points}, timeout=300)

    status, auto = preview([])
    assert status == 200 and auto["points"] == 8, auto  # the 8 keypoint prompts alone
    mask = cv2.imdecode(np.frombuffer(__import__("base64").b64decode(auto["mask"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (H, W) and set(np.unique(mask)) <= {0, 255} and auto["area"] == int((mask > 0).sum())
    pts = [{"frame": 0, "x": 30, "y": 20, "label": 1, "person": subject},
           {"frame": 0, "x": 10, "y": 60, "label": 0, "person": subject}]
    status, user = preview(pts)
    assert status == 200 and user["points"] == 10 and user["mask"] != auto["mask"]
    # points of another frame or another person are not this preview's
    other = next(p["id"] for p in people["people"] if not p["subject"])
    elsewhere = [dict(pts[0], frame=3), dict(pts[1], person=other)]
    status, same = preview(elsewhere)
    assert status == 200 and same["points"] == 8 and same["mask"] == auto["mask"]
    assert preview([], person=99)[0] == 400
    status, body = preview([{"frame": 0, "x": W + 5, "y": 1, "label": 1, "person": subject}])
    assert status == 400 and "outside" in body["error"]
    assert server.post_json("/wak/points_editor/preview_mask", {"session": "nope", "frame": 0, "person": 0})[0] == 404
    # without a SAM2 Loader on the editor the preview says what to connect
    sid2 = server.run_prompt(_with_defaults(server, _editor_prompt(tiny_models, sam2=False)))["outputs"]["5"]["wak_points_editor"][0]["session"]
    status, body = server.post_json("/wak/points_editor/preview_mask",
                                    {"session": sid2, "frame": 0, "person": subject, "points": []})
    assert status == 400 and "sam2_model" in body["error"]


# --- the frontend --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(server, tiny_models):
    from frontend_driver import Browser, chromium_path
    from models_for_prompt import write_inputs

    if "sam2" not in tiny_models:
        pytest.skip("the sam2 package is not installed")
    binary = chromium_path()
    if binary is None:
        pytest.skip("Chromium is not installed (scripts/test.sh installs it with apt)")
    write_inputs(server.base / "input")
    b = Browser(binary)
    try:
        b.open(server.url)
        b.quiet_frontend()
        b.wait_for("window.app.extensionManager && "
                   "(window.app.extensions || []).some(e => e.name === 'WanAnimateKit.PointsEditor')", timeout=60)
        yield b
    finally:
        b.close()


EDITOR_JS = """(async () => {
  const g = window.app.graph, nodes = g._nodes || g.nodes;
  const byType = (t) => nodes.filter(n => n.type === t);
  const set = (n, values) => { for (const [k, v] of Object.entries(values)) n.widgets.find(w => w.name === k).value = v; };
  for (const n of byType('WAK_PoseModelLoader')) set(n, {detector: %(detector)s, pose_model: %(vitpose)s, device: 'cpu'});
  for (const n of byType('WAK_Sam2Loader')) set(n, {checkpoint: %(sam2)s, device: 'cpu', dtype: 'fp32', image_size: 128});
  const seg = byType('WAK_CharacterSegmentation')[0];
  set(seg, {chunk_size: 8, frames_output: true});  // its MASK output is saved below (the shipped graph keeps it off)
  const origin = (name) => { const inp = seg.inputs.find(i => i.name === name);
    const link = g.links[inp.link] || (g.links.get && g.links.get(inp.link)); return [g.getNodeById(link.origin_id), link.origin_slot]; };
  let ed = byType('WAK_Sam2PointsEditor')[0];  // a workflow that ships the editor keeps its wiring
  if (!ed) {
    ed = LiteGraph.createNode('WAK_Sam2PointsEditor'); g.add(ed);
    ed.pos = [seg.pos[0], seg.pos[1] + seg.size[1] + 80];
    for (const name of ['pose', 'video', 'sam2_model']) { const [n, slot] = origin(name); n.connect(slot, ed, name); }
    ed.connect(0, seg, 'positive_points'); ed.connect(1, seg, 'negative_points'); ed.connect(2, seg, 'points_frame');
  }
  set(ed, {points: '[]'});
  ed.setSize([560, 620]);
  const c = window.app.canvas; c.ds.scale = 1; c.ds.offset = [120 - ed.pos[0], 140 - ed.pos[1]];
  c.setDirty(true, true); c.draw(true, true);
  window.wakEditorNode = ed; window.wakSegNode = seg;
  return [ed.id, seg.id];
})()"""

# Queue the part of the graph that a node needs (the node and its inputs' nodes, recursively), from the
# page so the editor gets the run's messages; the segmentation's mask goes to a Save Image added here.
QUEUE_JS = """(async () => {
  const p = await window.app.graphToPrompt(), out = p.output, keep = {};
  const visit = (id) => { id = String(id); if (keep[id]) return; keep[id] = out[id];
    for (const v of Object.values(out[id].inputs)) if (Array.isArray(v) && v.length === 2 && out[String(v[0])]) visit(v[0]); };
  visit(%(root)s);
  if (%(save)s) {
    keep['9001'] = {class_type: 'MaskToImage', inputs: {mask: [String(%(root)s), 0]}};
    keep['9002'] = {class_type: 'SaveImage', inputs: {images: ['9001', 0], filename_prefix: 'wak_points_editor'}};
  }
  const r = await window.app.api.queuePrompt(0, {output: keep, workflow: p.workflow});
  return r.prompt_id;
})()"""


def _load_replace(page, tiny_models) -> tuple[int, int]:
    """The shipped Replacement workflow with the editor wired to its segmentation node, on the tiny models."""
    from frontend_driver import load_workflow

    ui = json.loads((ROOT / "workflows" / "replace.json").read_text())
    page.evaluate("window.app.refreshComboInNodes ? window.app.refreshComboInNodes() : null; true")
    result = load_workflow(page, ui, "replace")
    assert result["missing"] == [] and result["bad"] == [], (result["missing"], result["bad"])
    # keep the tiny test clip at its own size (the shipped graph resizes to the official 1280x720 area)
    assert page.evaluate("(() => { const n = window.app.graph._nodes.find(n => n.type === 'WAK_DrivingVideo');"
                         " const w = n && n.widgets.find(w => w.name === 'resize_area');"
                         " if (!w) return false; w.value = 0; return true; })()")
    names = {k: json.dumps(tiny_models[k].name) for k in ("detector", "vitpose", "sam2")}
    ids = page.evaluate(EDITOR_JS % names)
    time.sleep(1.0)
    return ids


def _queue_from_page(page, server, root: int, save: bool = False, timeout=600) -> dict:
    """Queue node ``root`` with what it needs from the page; return the history entry."""
    prompt_id = page.evaluate(QUEUE_JS % {"root": json.dumps(str(root)), "save": json.dumps(save)})
    deadline = time.time() + timeout
    while time.time() < deadline:
        hist = server.get_json(f"/history/{prompt_id}")
        if prompt_id in hist:
            entry = hist[prompt_id]
            assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
            return entry
        time.sleep(0.5)
    raise TimeoutError("the queued graph did not finish")


def _saved_masks(server, entry) -> np.ndarray:
    from PIL import Image

    out = next(v for v in entry["outputs"].values() if v.get("images"))
    return np.stack([np.asarray(Image.open(server.base / "output" / f.get("subfolder", "") / f["filename"]))
                     for f in out["images"]])


def _widget_points(page) -> list:
    return json.loads(page.evaluate("window.wakEditorNode.widgets.find(w => w.name === 'points').value"))


def _prompt_points(page) -> tuple[list, dict]:
    p = page.evaluate("(async () => (await window.app.graphToPrompt()).output)()")
    ed = next(v for v in p.values() if v["class_type"] == "WAK_Sam2PointsEditor")
    return json.loads(ed["inputs"]["points"]), p


def _screen(page, x: float, y: float) -> tuple[float, float]:
    """Page position of source pixel (x, y): the frame is fitted (letterboxed) into the canvas element."""
    r = page.evaluate("(() => { const b = window.wakEditorNode.wakPointsEditor.canvas.getBoundingClientRect();"
                      " return [b.left, b.top, b.width, b.height]; })()")
    left, top, cw, ch = r
    s = min(cw / W, ch / H)
    return left + (cw - W * s) / 2 + x * s, top + (ch - H * s) / 2 + y * s


def _mouse(page, kind, pos, button="left", modifiers=0, buttons=None):
    page.call("Input.dispatchMouseEvent", type=kind, x=pos[0], y=pos[1], button=button, clickCount=1,
              modifiers=modifiers, buttons=buttons if buttons is not None else {"left": 1, "right": 2}.get(button, 0))


def _click(page, x, y, button="left", modifiers=0):
    pos = _screen(page, x, y)
    _mouse(page, "mouseMoved", pos, button="none", buttons=0)
    _mouse(page, "mousePressed", pos, button, modifiers)
    _mouse(page, "mouseReleased", pos, button, modifiers, buttons=0)
    time.sleep(0.1)


def _close(points, expected):
    assert len(points) == len(expected), (points, expected)
    for p, e in zip(points, expected):
        assert {k: p[k] for k in ("frame", "label", "person")} == {k: e[k] for k in ("frame", "label", "person")}
        assert abs(p["x"] - e["x"]) <= 1 and abs(p["y"] - e["y"]) <= 1, (p, e)


@pytest.mark.slow
def test_editor_clicks_reach_the_widget_the_prompt_and_the_masks(page, server, tiny_models, tmp_path):
    editor, seg = _load_replace(page, tiny_models)
    _queue_from_page(page, server, editor)  # the editor alone: frames, people, keypoint prompts
    page.wait_for("window.wakEditorNode.wakPointsEditor.session && window.wakEditorNode.wakPointsEditor.people",
                  timeout=60)
    info = page.evaluate("window.wakEditorNode.wakPointsEditor.session")
    assert (info["width"], info["height"], info["frames"]) == (W, H, FRAMES)
    people, subject = info["people"], info["subject"]
    assert len(people) == 2 and subject in people
    base = _saved_masks(server, _queue_from_page(page, server, seg, save=True))  # no points: official prompts
    drawn = page.evaluate("window.wakEditorNode.wakPointsEditor.people.people")
    assert sorted(p["id"] for p in drawn) == sorted(people) and all(len(p["auto"]) == 8 for p in drawn)

    # a positive and a negative point on the subject, frame 0
    _click(page, 30.0, 20.0, "left")
    _click(page, 28.0, 50.0, "right")
    want = [{"frame": 0, "x": 30.0, "y": 20.0, "label": 1, "person": subject},
            {"frame": 0, "x": 28.0, "y": 50.0, "label": 0, "person": subject}]
    _close(_widget_points(page), want)
    carried, prompt = _prompt_points(page)
    assert carried == _widget_points(page)
    ed_id = next(k for k, v in prompt.items() if v["class_type"] == "WAK_Sam2PointsEditor")
    seg_in = prompt[str(seg)]["inputs"]
    assert [seg_in["positive_points"], seg_in["negative_points"], seg_in["points_frame"]] == \
        [[ed_id, 0], [ed_id, 1], [ed_id, 2]]
    clicked = _saved_masks(server, _queue_from_page(page, server, seg, save=True))
    assert clicked.shape == base.shape and not np.array_equal(clicked, base)

    # preview mask on the shown frame
    page.evaluate("window.wakEditorNode.wakPointsEditor.previewButton.click(); true")
    page.wait_for("window.wakEditorNode.wakPointsEditor.mask", timeout=120)
    assert page.evaluate("window.wakEditorNode.wakPointsEditor.mask.frame") == 0
    shots = pathlib.Path(os.environ.get("WAK_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    rect = page.evaluate("""(() => { const c = window.app.canvas, n = window.wakEditorNode, th = LiteGraph.NODE_TITLE_HEIGHT;
        const r = c.canvas.getBoundingClientRect(), s = c.ds.scale;
        return [r.left + (n.pos[0] + c.ds.offset[0]) * s, r.top + (n.pos[1] - th + c.ds.offset[1]) * s,
                n.size[0] * s, (n.size[1] + th) * s]; })()""")
    page.dismiss_toasts()
    page.screenshot(shots / "points_editor.png", (rect[0] - 12, rect[1] - 12, rect[2] + 24, rect[3] + 24))
    assert (shots / "points_editor.png").stat().st_size > 5000

    # drag the positive point, then Shift+click the negative one away
    a, b = _screen(page, 30.0, 20.0), _screen(page, 40.0, 26.0)
    _mouse(page, "mouseMoved", a, button="none", buttons=0)
    _mouse(page, "mousePressed", a)
    for t in (0.3, 0.6, 1.0):
        _mouse(page, "mouseMoved", (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
    _mouse(page, "mouseReleased", b, buttons=0)
    time.sleep(0.1)
    want[0].update(x=40.0, y=26.0)
    _close(_widget_points(page), want)
    _click(page, 28.0, 50.0, "left", modifiers=8)  # Shift
    del want[1]
    _close(_widget_points(page), want)
    assert _prompt_points(page)[0] == _widget_points(page)
    moved = _saved_masks(server, _queue_from_page(page, server, seg, save=True))
    assert not np.array_equal(moved, clicked)

    # Delete key on the selected point, frame change, a point on frame 5
    _click(page, 40.0, 26.0)
    page.call("Input.dispatchKeyEvent", type="keyDown", key="Delete", code="Delete", windowsVirtualKeyCode=46)
    page.call("Input.dispatchKeyEvent", type="keyUp", key="Delete", code="Delete", windowsVirtualKeyCode=46)
    time.sleep(0.1)
    assert _widget_points(page) == []
    page.evaluate("(() => { const s = window.wakEditorNode.wakPointsEditor.slider; s.value = 5;"
                  " s.dispatchEvent(new Event('input')); return true; })()")
    page.wait_for("window.wakEditorNode.wakPointsEditor.frame === 5 && "
                  "window.wakEditorNode.wakPointsEditor.people.index === 5", timeout=30)
    _click(page, 31.0, 35.0)
    want = [{"frame": 5, "x": 31.0, "y": 35.0, "label": 1, "person": subject}]
    _close(_widget_points(page), want)
    carried, prompt = _prompt_points(page)
    assert carried == _widget_points(page)
    on5 = _saved_masks(server, _queue_from_page(page, server, seg, save=True))
    assert not np.array_equal(on5, base)

    # person switch: a point for the other person is stored with their id but is not the subject's
    other = next(p for p in people if p != subject)
    page.evaluate(f"(() => {{ const s = window.wakEditorNode.wakPointsEditor.personSelect; s.value = '{other}';"
                  " s.dispatchEvent(new Event('change')); return true; })()")
    _click(page, 70.0, 30.0, "right")
    want.append({"frame": 5, "x": 70.0, "y": 30.0, "label": 0, "person": other})
    _close(_widget_points(page), want)
    assert _prompt_points(page)[0] == _widget_points(page)
    switched = _saved_masks(server, _queue_from_page(page, server, seg, save=True))
    assert np.array_equal(switched, on5)  # the subject's prompts are unchanged
    # a saved workflow carries the points as the widget's value
    saved = page.evaluate("(() => { const w = window.app.graph.serialize();"
                          " return w.nodes.find(n => n.type === 'WAK_Sam2PointsEditor').widgets_values; })()")
    assert json.loads(saved[0]) == _widget_points(page) and len(json.loads(saved[0])) == 2


# --- SAM2 Character Segmentation with the editor's points on several frames ------------------------------
def _segment_log(points_mode="add", **points):
    import torch
    from sam2_official import RecordingPredictor
    from wan_animate_kit.nodes.segment import CharacterSegmentation
    from wan_animate_kit.preprocess.pose_types import PoseSequence

    n, w, h = 8, 20, 16
    kps = np.zeros((n, 1, 133, 3), np.float32)
    kps[..., 0], kps[..., 1], kps[..., 2] = 10, 4, 1.0  # every prompt point at (10, 4): exact in float32
    class Recorder(RecordingPredictor):  # also tracks backwards, as sam2 does from a later first prompt
        def propagate_in_video(self, inference_state, start_frame_idx=None, max_frame_num_to_track=None,
                               reverse=False):
            if not reverse:
                yield from super().propagate_in_video(inference_state, start_frame_idx, max_frame_num_to_track)
                return
            state, start = inference_state, start_frame_idx
            for t in range(start, max(-1, start - (max_frame_num_to_track or start) - 1), -1):
                yield t, list(state["obj_ids"]), torch.zeros(len(state["obj_ids"]), 1, state["video_height"],
                                                             state["video_width"])

    rec = Recorder()
    args = dict(chunk_size=4, keyframes=4, threshold=0.5, positive_points="", negative_points="",
                points_mode=points_mode, points_frame=0, object_points="")
    args.update(points)
    images = torch.from_numpy(np.random.default_rng(0).random((n, h, w, 3), dtype=np.float32))
    CharacterSegmentation.execute(sam2_model=rec, pose=PoseSequence(kps, (0,), w, h, fps=30.0), images=images, **args)
    return [(c[1], c[2], c[4], c[5]) for c in rec.log if c[0] == "add"]  # (chunk, frame in chunk, points, labels)


KEY = [[10.0, 4.0]] * 8  # the 8 keypoint prompts of a keyframe


def test_segmentation_takes_points_on_several_frames(host):
    """Chunks of 4 frames: keypoint prompts on chunk frame 0 (official keyframes of a 4-frame chunk);
    each user point goes on its own frame, after that frame's keypoint prompts (mode add)."""
    pos = json.dumps([{"x": 3, "y": 5, "frame": 2}, {"x": 7, "y": 8}])  # the second: on points_frame (1)
    neg = json.dumps([{"x": 5, "y": 6, "frame": 6}, {"x": 9, "y": 9, "frame": 4}])
    log = _segment_log(positive_points=pos, negative_points=neg, points_frame=1)
    assert log == [(0, 0, KEY, [1] * 8), (0, 1, [[7, 8]], [1]), (0, 2, [[3, 5]], [1]),
                   (1, 0, KEY + [[9, 9]], [1] * 8 + [0]), (1, 2, [[5, 6]], [0])]
    # replace: the keypoint prompts of both chunks give way to the user points
    log = _segment_log("replace", positive_points=pos, negative_points=neg, points_frame=1)
    assert log == [(0, 1, [[7, 8]], [1]), (0, 2, [[3, 5]], [1]), (1, 0, [[9, 9]], [0]), (1, 2, [[5, 6]], [0])]
    # negatives only on points_frame, replace: that chunk's keypoints go, its negatives stay
    log = _segment_log("replace", positive_points=json.dumps([{"x": 3, "y": 5, "frame": 2}]),
                       negative_points=json.dumps([{"x": 1, "y": 1}]), points_frame=3)
    assert log == [(0, 2, [[3, 5]], [1]), (0, 3, [[1, 1]], [0]), (1, 0, KEY, [1] * 8)]


def test_points_on_points_frame_plan_as_before(host):
    """A "frame" equal to points_frame changes nothing; no points leave the keypoint prompts alone."""
    plain = _segment_log(positive_points='[{"x": 3, "y": 5}]', negative_points='[{"x": 1, "y": 2}]', points_frame=5)
    framed = _segment_log(positive_points='[{"x": 3, "y": 5, "frame": 5}]',
                          negative_points='[{"x": 1, "y": 2, "frame": 5}]', points_frame=5)
    assert plain == framed == [(0, 0, KEY, [1] * 8), (1, 0, KEY, [1] * 8), (1, 1, [[3, 5], [1, 2]], [1, 0])]
    assert _segment_log() == [(0, 0, KEY, [1] * 8), (1, 0, KEY, [1] * 8)]


@pytest.mark.parametrize("points, name, words", [
    (dict(positive_points='[{"x": 1, "y": 1, "frame": 8}]'), "positive_points", "frames 0..7"),
    (dict(negative_points='[{"x": 1, "y": 1, "frame": -1}]'), "negative_points", "frame -1"),
    (dict(positive_points='[{"x": 30, "y": 1, "frame": 3}]', points_frame=1), "positive_points", "outside"),
    (dict(points_mode="replace", negative_points='[{"x": 1, "y": 1, "frame": 3}]'), "points_mode", "positive"),
])
def test_bad_frames_name_the_input(host, points, name, words):
    from wan_animate_kit.nodes.common import InputError

    mode = points.pop("points_mode", "add")
    with pytest.raises(InputError) as e:
        _segment_log(mode, **points)
    msg = str(e.value)
    assert name in msg and words in msg, msg
