"""Build the shipped workflows: UI graphs (workflows/*.json) and their API twins (workflows/api/).

    python scripts/build_workflows.py [--server URL]

The graphs are described here in Python; widget order, sockets and defaults come from the host's
``/object_info`` (a local host is started when no --server is given), and each API twin is the
UI graph converted by scripts/ui_to_api.py. A test checks both stay in sync.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from ui_to_api import _has_control_after_generate, _is_widget, convert, input_specs  # noqa: E402

WORKFLOWS = ROOT / "workflows"
MANIFEST = WORKFLOWS / "models.json"

POSITIVE = "视频中的人在做动作"
NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
            "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，"
            "三条腿，背景人很多，倒着走")

PROMPT_NOTE = (
    "**Prompts (official, in Chinese).** Positive: *the person in the video is doing actions* (Wan2.2 "
    "wan_animate_14B.py `prompt`; the authors advise against custom prompts, though they work). Negative (Wan's "
    "standard `sample_neg_prompt`, used only when cfg > 1): *garish colours, overexposed, static, blurred details, "
    "subtitles, style, artwork, painting, frame, still, greyish overall, worst quality, low quality, JPEG "
    "artefacts, ugly, mutilated, extra fingers, badly drawn hands, badly drawn face, deformed, disfigured, "
    "malformed limbs, fused fingers, motionless frame, cluttered background, three legs, many people in the "
    "background, walking backwards*.")

MODEL_FILES = {
    "dit": "wan2.2_animate_14B_bf16.safetensors",
    "vae": "wan_2.1_vae.safetensors",
    "t5": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "clip_vision": "clip_vision_h.safetensors",
    "relight": "wan2.2_animate_14B_relight_lora_bf16.safetensors",
    "distill": "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors",
    "detector": "yolov10m.onnx",
    "vitpose": "vitpose_h_wholebody_model.onnx",  # official ViTPose-H (its .bin beside it)
    "vitpose_data": "vitpose_h_wholebody_data.bin",
    "sam2": "sam2_hiera_large.pt",  # official SAM 2 Hiera-L
}


def _manifest_models() -> dict[str, dict]:
    if not MANIFEST.exists():
        return {}
    data = json.loads(MANIFEST.read_text())
    entries = data["models"] if isinstance(data, dict) else data
    return {e["name"]: e for e in entries}


class Graph:
    """A UI-format graph built against the host's object_info."""

    def __init__(self, info: dict):
        self.info = info
        self.nodes: list[dict] = []
        self.links: list[list] = []
        self.groups: list[dict] = []
        self.manifest = _manifest_models()

    def node(self, ntype: str, pos, title: str | None = None, size=(320, 200), **values) -> dict:
        info = self.info[ntype]
        nid = len(self.nodes) + 1
        node = {"id": nid, "type": ntype, "pos": list(pos), "size": list(size), "flags": {}, "order": nid - 1,
                "mode": 0, "inputs": [], "outputs": [], "properties": {"Node name for S&R": ntype},
                "widgets_values": []}
        if title:
            node["title"] = title
        known = {name for name, _ in input_specs(info)}
        unknown = set(values) - known
        if unknown:
            raise KeyError(f"{ntype} has no input(s) {sorted(unknown)}")
        for name, spec in input_specs(info):
            value = values.get(name)
            link = value if isinstance(value, tuple) else None
            if _is_widget(spec):
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if link is None and value is None:
                    value = opts.get("default", spec[0][0] if isinstance(spec[0], list) and spec[0] else None)
                    if spec[0] == "COMBO" and value is None and opts.get("options"):
                        value = opts["options"][0]
                node["widgets_values"].append(None if link else value)
                if _has_control_after_generate(name, spec):
                    node["widgets_values"].append("fixed")
                if link:
                    node["inputs"].append({"name": name, "type": spec[0] if isinstance(spec[0], str) else "COMBO",
                                           "widget": {"name": name}, "link": None})
            else:
                node["inputs"].append({"name": name, "type": spec[0] if isinstance(spec[0], str) else "*",
                                       "link": None})
            if link:
                self._link(link, node, name)
        if any(isinstance(s[1], dict) and (s[1].get("image_upload") or s[1].get("video_upload"))
               for _, s in input_specs(info) if len(s) > 1):
            node["widgets_values"].append("image")
        names = info.get("output_name") or info["output"]
        for i, (otype, oname) in enumerate(zip(info["output"], names)):
            node["outputs"].append({"name": oname, "type": otype if isinstance(otype, str) else "COMBO",
                                    "links": [], "slot_index": i})
        self.nodes.append(node)
        return node

    def out(self, node: dict, name_or_slot) -> tuple[dict, int]:
        if isinstance(name_or_slot, int):
            return node, name_or_slot
        names = [o["name"] for o in node["outputs"]]
        return node, names.index(name_or_slot)

    def _link(self, src: tuple[dict, int], dst: dict, input_name: str) -> None:
        node, slot = src
        lid = len(self.links) + 1
        target_slot = next(i for i, inp in enumerate(dst["inputs"]) if inp["name"] == input_name)
        ltype = node["outputs"][slot]["type"]
        self.links.append([lid, node["id"], slot, dst["id"], target_slot, ltype])
        node["outputs"][slot]["links"].append(lid)
        dst["inputs"][target_slot]["link"] = lid

    def models(self, node: dict, *keys: str) -> None:
        """properties.models: name, directory and URL, so the frontend can offer downloads."""
        entries = []
        for key in keys:
            name = MODEL_FILES[key]
            m = self.manifest.get(name, {})
            entry = {"name": name, "directory": m.get("folder", "")}
            if m.get("url"):
                entry["url"] = m["url"]
            entries.append(entry)
        node["properties"]["models"] = entries

    def note(self, pos, text: str, size=(380, 160)) -> dict:
        nid = len(self.nodes) + 1
        node = {"id": nid, "type": "MarkdownNote", "pos": list(pos), "size": list(size), "flags": {},
                "order": nid - 1, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                "widgets_values": [text], "color": "#432", "bgcolor": "#653"}
        self.nodes.append(node)
        return node

    def group(self, title: str, x, y, w, h, color="#3f789e") -> None:
        """A group whose title bar sits above its nodes' title bars (nodes are placed from y + 40)."""
        self.groups.append({"id": len(self.groups) + 1, "title": title, "bounding": [x, y - 40, w, h + 40],
                            "color": color, "font_size": 24, "flags": {}})

    def to_json(self) -> dict:
        return {"id": "00000000-0000-4000-8000-000000000000", "revision": 0,
                "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": self.nodes, "links": self.links, "groups": self.groups, "definitions": {"subgraphs": []},
                "config": {}, "extra": {"ds": {"scale": 0.55, "offset": [40, 60]}}, "version": 0.4}


def build(info: dict, mode: str, fast: bool) -> dict:
    """One shipped graph: mode 'animate' or 'replace', fast = step-distill LoRA (6 steps, cfg 1)."""
    g = Graph(info)
    replace = mode == "replace"
    # -- inputs -------------------------------------------------------------------------------
    g.group("1 · Inputs", 0, 0, 760, 620)
    char = g.node("LoadImage", (20, 40), title="Character image", size=(320, 320), image="character.png")
    video = g.node("LoadVideo", (360, 40), title="Driving video", size=(380, 320), file="driving.mp4")
    area = dict(resize_area=OFFICIAL_AREA) if replace else {}
    drv = g.node(PREFIX + "DrivingVideo", (360, 400), title="Driving video at 30 fps (official)", size=(380, 200),
                 video=g.out(video, 0), fps=30.0, **area)
    g.note((20, 400), "**Inputs.** The character image and the driving video. As in the official preprocessing, the "
           "video is resampled to 30 fps (set fps 0 to keep its own rate)" + (" and resized to about 1280x720 "
           "before pose, masks and face crops" if replace else "") + "; the output has its frame count, fps and "
           "sound. " + ("Replacement: the person in the video becomes the character, scene and lighting kept."
                        if replace else "Animation: the character moves like the person in the video, on the "
                        "image's background."), size=(320, 200))
    # -- pose -----------------------------------------------------------------------------------
    g.group("2 · Pose (ViTPose, tracked)", 800, 0, 1140, 620, color="#8a6e3f")
    pm = g.node(PREFIX + "PoseModelLoader", (820, 40), size=(320, 200), detector=MODEL_FILES["detector"],
                pose_model=MODEL_FILES["vitpose"])
    g.models(pm, "detector", "vitpose", "vitpose_data")
    dpose = g.node(PREFIX + "PoseExtract", (1160, 40), title="Driving pose", size=(360, 260),
                   pose_models=g.out(pm, 0), video=g.out(drv, 0), frames_output=False)
    if replace:  # the Driving Video node already resized the frames to the official area: its size is the output's
        out_w, out_h = g.out(drv, 4), g.out(drv, 5)
    else:
        size = g.node(PREFIX + "OutputSize", (820, 400), size=(320, 150), area=OFFICIAL_AREA, image=g.out(char, 0))
        out_w, out_h = g.out(size, 0), g.out(size, 1)
    g.note((1160, 330), "**Pose.** Everyone is detected and tracked; `person` picks who drives the character "
           "('largest' as official, an index, or a point 'x,y'). `smoothing` above 0 steadies jittery keypoints (the "
           "official pipeline does not smooth). The output size keeps the aspect of the "
           + ("video at the official pixel budget of 1280x720 (Driving Video's `resize_area`; 399360 = 832x480 "
              "for less memory and time)." if replace else "character image at the official pixel budget of "
              "1280x720; lower Output Size's `area` (e.g. 832x480) for less memory and time."), size=(360, 200))
    if replace:
        pose_for_render = dpose
    else:
        # official: the character's pose comes from the image resized by area to the output size
        # (process_pipepline.py: resize_by_area(refer_img, ...), INTER_AREA when shrinking)
        charsized = g.node(PREFIX + "PaddingResize", (820, 255), title="Character at output size (for its pose)",
                           size=(320, 130), images=g.out(char, 0), width=out_w, height=out_h,
                           interpolation="area when shrinking (official frames)")
        cpose = g.node(PREFIX + "PoseExtract", (1540, 40), title="Character pose", size=(360, 260),
                       pose_models=g.out(pm, 0), images=g.out(charsized, 0), frames_output=False)
        retarget = g.node(PREFIX + "PoseRetarget", (1540, 320), size=(360, 280), driving_pose=g.out(dpose, 0),
                          reference_pose=g.out(cpose, 0), reference_image=g.out(charsized, 0),
                          width=out_w, height=out_h)
        pose_for_render = retarget
    # -- conditioning videos --------------------------------------------------------------------------
    g.group("3 · Skeleton, face" + (", masks" if replace else ""), 0, 660, 1940, 560, color="#3f8a5e")
    render = g.node(PREFIX + "RenderPose", (20, 700), size=(320, 220), pose=g.out(pose_for_render, 0),
                    width=out_w, height=out_h, frames_output=False)
    faces = g.node(PREFIX + "FaceCrops", (360, 700), size=(320, 180), pose=g.out(dpose, 0), video=g.out(drv, 0),
                   frames_output=False)
    refimg = g.node(PREFIX + "PaddingResize", (20, 940), title="Reference at output size", size=(320, 130),
                    images=g.out(char, 0), width=out_w, height=out_h)
    env = None
    if replace:
        sam = g.node(PREFIX + "Sam2Loader", (720, 700), size=(320, 130), checkpoint=MODEL_FILES["sam2"])
        g.models(sam, "sam2")
        seg = g.node(PREFIX + "CharacterSegmentation", (1060, 700), size=(340, 240), sam2_model=g.out(sam, 0),
                     pose=g.out(dpose, 0), video=g.out(drv, 0), frames_output=False)
        # compact masks from SAM2 to the sampler: no full-length float MASK batch anywhere
        shape = g.node(PREFIX + "MaskShape", (1420, 700), size=(320, 260), mask=g.out(seg, 3), pose=g.out(dpose, 0),
                       feather=0.0, frames_output=False)
        env = g.node(PREFIX + "EnvironmentVideo", (720, 900), size=(340, 240), video=g.out(drv, 0),
                     mask=g.out(shape, 3), width=out_w, height=out_h, frames_output=False, mask_output=False)
        g.note((1420, 990), "**Masks.** SAM2 follows the tracked person, prompted as the official code does: 8 "
               "body points on 4 keyframes of every 400-frame chunk. The mask is dilated and turned into blocks as "
               "officially; check the overlay output before sampling.", size=(320, 170))
    else:
        g.note((720, 700), "**Skeleton and face.** The retargeted poses are drawn exactly as the official "
               "pipeline draws them; face crops are the official ones (landmark box, stretched to 512x512; "
               "`mode` square gives square, smoothed crops). Both are VIDEO outputs made on demand while the "
               "sampler reads them (frames_output off), so no whole video sits in memory.", size=(360, 170))
    # -- model --------------------------------------------------------------------------------------
    g.group("4 · Models", 0, 1260, 1140, 620, color="#6e3f8a")
    unet = g.node("UNETLoader", (20, 1300), size=(340, 110), unet_name=MODEL_FILES["dit"])
    g.models(unet, "dit")
    model = (unet, 0)
    if replace:
        relight = g.node(PREFIX + "RelightLoRA", (380, 1300), size=(340, 130), model=model,
                         lora_name=MODEL_FILES["relight"], strength=1.0)
        g.models(relight, "relight")
        model = (relight, 0)
    if fast:
        distill = g.node("LoraLoaderModelOnly", (380, 1450), title="Step-distill LoRA", size=(340, 110),
                         model=model, lora_name=MODEL_FILES["distill"], strength_model=1.0)
        g.models(distill, "distill")
        model = (distill, 0)
    clip = g.node("CLIPLoader", (20, 1440), size=(340, 110), clip_name=MODEL_FILES["t5"], type="wan")
    g.models(clip, "t5")
    pos = g.node("CLIPTextEncode", (380, 1590), title="Positive prompt", size=(340, 120), text=POSITIVE,
                 clip=g.out(clip, 0))
    neg = g.node("CLIPTextEncode", (740, 1590), title="Negative prompt", size=(380, 120), text=NEGATIVE,
                 clip=g.out(clip, 0))
    cvl = g.node("CLIPVisionLoader", (20, 1590), size=(340, 80), clip_name=MODEL_FILES["clip_vision"])
    g.models(cvl, "clip_vision")
    cve = g.node(PREFIX + "ClipVisionEncodeOfficial", (20, 1720), size=(340, 100), clip_vision=g.out(cvl, 0),
                 image=g.out(refimg, 0))
    vae = g.node("VAELoader", (740, 1420), size=(300, 80), vae_name=MODEL_FILES["vae"])
    g.models(vae, "vae")
    g.note((380, 1730), PROMPT_NOTE, size=(740, 130))
    # -- sampling -----------------------------------------------------------------------------------
    g.group("5 · Wan-Animate sampling and output", 1180, 1260, 760, 1080, color="#8a3f3f")
    extra = {}
    if replace:
        extra = dict(environment_video=g.out(env, 3), character_mask=g.out(env, 5))
    sampler = g.node(PREFIX + "AnimateSampler", (1200, 1300), title="Wan-Animate sampler", size=(360, 1000),
                     model=model, positive=g.out(pos, 0), negative=g.out(neg, 0), vae=g.out(vae, 0),
                     reference=g.out(refimg, 0), pose_video=g.out(render, 1), face_video=g.out(faces, 2),
                     clip_vision_output=g.out(cve, 0), pose=g.out(pose_for_render, 0),
                     steps=6 if fast else 20, cfg=1.0, sampler_name="euler" if fast else OFFICIAL_SAMPLER,
                     scheduler="simple", shift=8.0 if fast else 5.0, fps=g.out(drv, 1), audio=g.out(drv, 3), frames_output=False,
                     **extra)
    g.node("SaveVideo", (1580, 1300), title="Save video", size=(340, 380), video=g.out(sampler, 1),
           filename_prefix=f"wan_animate/{mode}{'_fast' if fast else ''}")
    g.note((1580, 1700), "**Output.** The sampler writes the video to a file segment by segment (frames_output "
           "off), with the driving video's fps and sound, so memory stays flat for any length; Save Video copies "
           "it. To upscale or interpolate, turn frames_output on and take its frames output.", size=(340, 160))
    return g.to_json()


def build_replace_two(info: dict) -> dict:
    """Two people replaced in one clip: pass A replaces person A (index 0) with character A, pass B
    replaces person B (index 1) with character B on pass A's output. Both passes use the one tracking
    of the original video (Pick Person changes only the subject), so the ids stay with the same
    people; pass B's SAM2 mask and environment come from pass A's output, its face crops from the
    original video (person B is unchanged there)."""
    g = Graph(info)
    # -- inputs -------------------------------------------------------------------------------
    g.group("1 · Inputs", 0, 0, 1100, 620)
    char_a = g.node("LoadImage", (20, 40), title="Character A image", size=(320, 320), image="character.png")
    char_b = g.node("LoadImage", (360, 40), title="Character B image", size=(320, 320), image="character_b.png")
    video = g.node("LoadVideo", (700, 40), title="Driving video", size=(380, 320), file="driving.mp4")
    drv = g.node(PREFIX + "DrivingVideo", (700, 400), title="Driving video at 30 fps (official)", size=(380, 200),
                 video=g.out(video, 0), fps=30.0, resize_area=OFFICIAL_AREA)
    g.note((20, 400), "**Two people.** Person A (index 0: the first person seen) becomes character A, then "
           "person B (index 1) becomes character B on that result. Each pass is the shipped Replacement with "
           "its own SAM2 mask; check the two pose previews and the mask overlays. Change the indices (or use a "
           "point 'x,y') in Driving pose and Pick person B.", size=(660, 200))
    # -- pose -----------------------------------------------------------------------------------
    g.group("2 · Pose (ViTPose, tracked once)", 1140, 0, 1160, 620, color="#8a6e3f")
    pm = g.node(PREFIX + "PoseModelLoader", (1160, 40), size=(320, 200), detector=MODEL_FILES["detector"],
                pose_model=MODEL_FILES["vitpose"])
    g.models(pm, "detector", "vitpose", "vitpose_data")
    pose_a = g.node(PREFIX + "PoseExtract", (1500, 40), title="Driving pose (person A)", size=(360, 260),
                    pose_models=g.out(pm, 0), video=g.out(drv, 0), person="0", frames_output=False)
    pose_b = g.node(PREFIX + "PosePickPerson", (1880, 40), title="Pick person B", size=(400, 180),
                    pose=g.out(pose_a, 0), person="1")
    out_w, out_h = g.out(drv, 4), g.out(drv, 5)
    g.note((1500, 330), "**Pose.** Everyone is tracked once, on the original video, with stable ids; `person` "
           "picks person A, Pick Person picks person B from the same tracking. Replacement keeps every person "
           "where they were, so pass B needs no new tracking and the ids stay attached to the same people (a "
           "pose re-tracked on pass A's output can be matched back by position with Pick Person's "
           "`match_to`).", size=(780, 170))
    # -- models ---------------------------------------------------------------------------------------
    g.group("3 · Models", 0, 660, 1100, 620, color="#6e3f8a")
    unet = g.node("UNETLoader", (20, 700), size=(340, 110), unet_name=MODEL_FILES["dit"])
    g.models(unet, "dit")
    relight = g.node(PREFIX + "RelightLoRA", (380, 700), size=(340, 130), model=g.out(unet, 0),
                     lora_name=MODEL_FILES["relight"], strength=1.0)
    g.models(relight, "relight")
    model = (relight, 0)
    clip = g.node("CLIPLoader", (20, 840), size=(340, 110), clip_name=MODEL_FILES["t5"], type="wan")
    g.models(clip, "t5")
    pos = g.node("CLIPTextEncode", (380, 990), title="Positive prompt", size=(340, 120), text=POSITIVE,
                 clip=g.out(clip, 0))
    neg = g.node("CLIPTextEncode", (740, 990), title="Negative prompt", size=(340, 120), text=NEGATIVE,
                 clip=g.out(clip, 0))
    cvl = g.node("CLIPVisionLoader", (20, 990), size=(340, 80), clip_name=MODEL_FILES["clip_vision"])
    g.models(cvl, "clip_vision")
    vae = g.node("VAELoader", (740, 700), size=(340, 80), vae_name=MODEL_FILES["vae"])
    g.models(vae, "vae")
    sam = g.node(PREFIX + "Sam2Loader", (740, 820), size=(340, 130), checkpoint=MODEL_FILES["sam2"])
    g.models(sam, "sam2")
    g.note((20, 1130), PROMPT_NOTE, size=(1060, 130))

    def replace_pass(label: str, x: int, pose, char, env_source, color: str):
        """Skeleton, face crops, reference, CLIP vision, SAM2 mask, environment and sampler of one pass."""
        g.group(f"{4 if label == 'A' else 5} · Pass {label}: person {label} becomes character {label}", x, 660,
                1160, 1660, color=color)
        render = g.node(PREFIX + "RenderPose", (x + 20, 700), title=f"Skeleton {label}", size=(320, 220),
                        pose=g.out(pose, 0), width=out_w, height=out_h, frames_output=False)
        faces = g.node(PREFIX + "FaceCrops", (x + 20, 950), title=f"Face crops {label} (original video)",
                       size=(320, 180), pose=g.out(pose, 0), video=g.out(drv, 0), frames_output=False)
        refimg = g.node(PREFIX + "PaddingResize", (x + 20, 1160), title=f"Character {label} at output size",
                        size=(320, 130), images=g.out(char, 0), width=out_w, height=out_h)
        cve = g.node(PREFIX + "ClipVisionEncodeOfficial", (x + 20, 1320), title=f"CLIP vision {label}",
                     size=(320, 100), clip_vision=g.out(cvl, 0), image=g.out(refimg, 0))
        seg = g.node(PREFIX + "CharacterSegmentation", (x + 360, 700), title=f"SAM2 mask {label}", size=(380, 360),
                     sam2_model=g.out(sam, 0), pose=g.out(pose, 0), video=env_source, frames_output=False)
        shape = g.node(PREFIX + "MaskShape", (x + 760, 700), title=f"Mask shaping {label}", size=(380, 260),
                       mask=g.out(seg, 3), pose=g.out(pose, 0), feather=0.0, frames_output=False)
        env = g.node(PREFIX + "EnvironmentVideo", (x + 360, 1090), title=f"Environment {label}", size=(380, 240),
                     video=env_source, mask=g.out(shape, 3), width=out_w, height=out_h, frames_output=False,
                     mask_output=False)
        sampler = g.node(PREFIX + "AnimateSampler", (x + 360, 1360), title=f"Wan-Animate sampler {label}",
                         size=(380, 640), model=model, positive=g.out(pos, 0), negative=g.out(neg, 0),
                         vae=g.out(vae, 0), reference=g.out(refimg, 0), pose_video=g.out(render, 1),
                         face_video=g.out(faces, 2), clip_vision_output=g.out(cve, 0), pose=g.out(pose, 0),
                         environment_video=g.out(env, 3), character_mask=g.out(env, 5), steps=20, cfg=1.0,
                         sampler_name=OFFICIAL_SAMPLER, scheduler="simple", shift=5.0, fps=g.out(drv, 1),
                         audio=g.out(drv, 3), frames_output=False)
        save = g.node("SaveVideo", (x + 760, 1360), title="Save video" if label == "B" else "Save video (pass A)",
                      size=(380, 380), video=g.out(sampler, 1),
                      filename_prefix="wan_animate/replace_two" + ("" if label == "B" else "_pass_a"))
        return sampler, save

    sampler_a, _ = replace_pass("A", 1140, pose_a, char_a, g.out(drv, 0), "#3f8a5e")
    g.note((1900, 1760), "**Pass A** is the shipped Replacement for person A: mask, environment and faces from "
           "the driving video. Its output video (a file, frames_output off) is the scene pass B works on.",
           size=(380, 150))
    replace_pass("B", 2340, pose_b, char_b, g.out(sampler_a, 1), "#8a3f3f")
    g.note((3100, 1760), "**Pass B** replaces person B on pass A's output: SAM2 segments person B in pass A's "
           "frames (prompted from person B's keypoints, which still hold: replacement keeps positions), the "
           "environment is pass A's output with person B blacked out, the face crops come from the original "
           "video (person B is unchanged there). Save video is the final result with the driving video's sound.",
           size=(380, 220))
    return g.to_json()


PREFIX = "WAK_"
OFFICIAL_SAMPLER = "official UniPC (bh2, order 2)"  # Wan2.2 generate.py default --sample_solver unipc
OFFICIAL_AREA = 1280 * 720  # official resolution_area (Wan2.2 preprocess_data.py --resolution_area 1280 720)
VARIANTS = {"animate": ("animate", False), "animate_fast": ("animate", True),
            "replace": ("replace", False), "replace_fast": ("replace", True)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server")
    args = ap.parse_args(argv)
    srv = None
    if args.server:
        url = args.server.rstrip("/")
    else:
        import tempfile

        sys.path.insert(0, str(ROOT / "tests"))
        from host_harness import HostServer, host_dir

        tmp = pathlib.Path(tempfile.mkdtemp(prefix="wak-build-"))
        (tmp / "models").mkdir()
        srv = HostServer(host_dir(), tmp / "base", tmp / "models").start()
        url = srv.url
    try:
        with urllib.request.urlopen(url + "/object_info") as r:
            info = json.loads(r.read())
    finally:
        if srv:
            srv.stop()
    (WORKFLOWS / "api").mkdir(parents=True, exist_ok=True)
    builders = {name: (lambda mode=mode, fast=fast: build(info, mode, fast))
                for name, (mode, fast) in VARIANTS.items()}
    builders["replace_two"] = lambda: build_replace_two(info)
    for name, make in builders.items():
        ui = make()
        (WORKFLOWS / f"{name}.json").write_text(json.dumps(ui, indent=1, ensure_ascii=False) + "\n")
        api = convert(ui, info)
        (WORKFLOWS / "api" / f"{name}.json").write_text(json.dumps(api, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote workflows/{name}.json and workflows/api/{name}.json ({len(ui['nodes'])} nodes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
