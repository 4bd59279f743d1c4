"""The model manifest (workflows/models.json) and models/manifest.py: schema, checks, downloader."""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import pathlib
import re
import sys
import threading
import urllib.parse

import pytest

from wan_animate_kit.models import manifest as mf

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEX64 = re.compile(r"^[0-9a-f]{64}$")


# --- schema --------------------------------------------------------------------------------------
def test_manifest_schema_and_no_invented_checksums():
    raw = json.loads((ROOT / "workflows" / "models.json").read_text())
    assert re.search(r"\b(none|not)\b.*\bfetched\b", raw["note"], re.I)  # says the URLs were not fetched here
    entries = mf.load_manifest()
    assert len(entries) == len(raw["models"]) >= 9
    for item, e in zip(raw["models"], entries):
        for key in ("name", "folder", "url", "size_bytes", "sha256", "verified", "workflows"):
            assert key in item, f"{item.get('name')}: no '{key}'"
        assert e.url.startswith("https://")
        assert e.name in urllib.parse.unquote(e.url), f"{e.name}: URL does not end in the file name"
        assert e.sha256 is None or HEX64.match(e.sha256)
        # nothing could be downloaded where this manifest was written: nothing may claim verification
        assert e.verified is False and e.sha256 is None and e.size_bytes is None
        assert set(e.workflows) <= set(mf.WORKFLOW_NAMES)
        # a file no shipped workflow uses is listed only as a named alternative
        assert e.workflows or "alternative" in e.role, e.name
    folders = {e.name: e.folder for e in entries}
    assert folders["yolov10m.onnx"] == folders["vitpose_h_wholebody_model.onnx"] == "detection"
    assert folders["vitpose-l-wholebody.onnx"] == folders["vitpose_h_wholebody_data.bin"] == "detection"
    assert folders["sam2_hiera_large.pt"] == folders["sam2.1_hiera_large.pt"] == "sam2"
    assert folders["wan_2.1_vae.safetensors"] == "vae"
    assert folders["wan_2.1_vae.safetensors"] == "vae"
    assert folders["umt5_xxl_fp8_e4m3fn_scaled.safetensors"] == "text_encoders"


def test_workflow_subsets():
    names = lambda wf: {e.name for e in mf.models_for(wf)}  # noqa: E731
    # the official preprocessing models (Wan2.2 preprocess_data.py: ViTPose-H whole-body, YOLOv10m, SAM 2 Hiera-L)
    assert "sam2_hiera_large.pt" in names("replace") and "sam2_hiera_large.pt" not in names("animate")
    assert {"yolov10m.onnx", "vitpose_h_wholebody_model.onnx", "vitpose_h_wholebody_data.bin"} <= names("animate")
    assert "vitpose-l-wholebody.onnx" not in names("animate") | names("replace")
    assert "sam2.1_hiera_large.pt" not in names("replace")
    assert "wan2.2_animate_14B_relight_lora_bf16.safetensors" in names("replace_fast")
    assert "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors" in names("animate_fast")
    assert "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors" not in names("animate")
    assert names("animate") < names(None)
    with pytest.raises(ValueError, match="unknown workflow"):
        mf.models_for("dance")


@pytest.mark.parametrize("bad, match", [
    ({"name": "a.onnx", "folder": "detection", "url": "https://x/a.onnx", "sha256": "abc"}, "sha256"),
    ({"name": "a.onnx", "folder": "detection", "url": "https://x/a.onnx", "sha256": "A" * 64}, "sha256"),
    ({"name": "a.onnx", "folder": "detection"}, "url"),
    ({"name": "a.onnx", "folder": "../etc", "url": "https://x/a.onnx"}, "folder"),
    ({"name": "a.onnx", "folder": "detection", "url": "https://x/a.onnx", "verified": True}, "verified"),
    ({"name": "a.onnx", "folder": "detection", "url": "ftp://x/a.onnx"}, "http"),
    ({"name": "a.onnx", "folder": "detection", "url": "https://x/a.onnx", "requires": ["a.bin"]}, "requires a.bin"),
    ({"name": "a.onnx", "folder": "detection", "url": "https://x/a.onnx", "requires": "a.bin"}, "requires"),
])
def test_bad_manifest_rejected(tmp_path, bad, match):
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": [bad]}))
    with pytest.raises(mf.ManifestError, match=match):
        mf.load_manifest(path)


def test_shipped_api_workflows_only_use_manifest_models():
    """Every model file a shipped API workflow names is in the manifest and lists that workflow."""
    api = ROOT / "workflows" / "api"
    files = sorted(api.glob("*.json")) if api.is_dir() else []
    if not files:
        pytest.skip("no shipped API workflows yet")
    entries = mf.load_manifest()
    for wf in files:
        prompt = json.loads(wf.read_text())
        for e in mf.referenced_models(prompt, entries):
            assert e.url, f"{wf.name} uses {e.relpath}, which is not in workflows/models.json"
            assert wf.stem in e.workflows, f"{e.name}: manifest 'workflows' lacks {wf.stem}"


# --- checks --------------------------------------------------------------------------------------
def _tiny_manifest():
    return [mf.ModelEntry("det.onnx", "detection", "https://example.invalid/det.onnx", workflows=("animate",)),
            mf.ModelEntry("sam.pt", "sam2", "https://example.invalid/sam.pt", workflows=("replace",)),
            mf.ModelEntry("vae.safetensors", "vae", "https://example.invalid/vae.safetensors",
                          workflows=("animate", "replace"))]


def test_check_local_models_dir(tmp_path):
    entries = _tiny_manifest()
    (tmp_path / "detection").mkdir()
    (tmp_path / "detection" / "det.onnx").write_bytes(b"x")
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "other.safetensors").write_bytes(b"x")
    missing = mf.check_local(tmp_path, "replace", entries)
    assert [(m.name, m.folder) for m in missing] == [("sam.pt", "sam2"), ("vae.safetensors", "vae")]
    # the real absolute folder, not a generic ComfyUI/models
    assert missing[0].location == str(tmp_path / "sam2") + os.sep
    msg = missing[0].message()
    assert f"put it in {tmp_path / 'sam2'}{os.sep}" in msg and "https://example.invalid/sam.pt" in msg
    assert mf.models_root(missing) == str(tmp_path)
    assert mf.Missing("a.pt", "sam2", None).location == "ComfyUI/models/sam2/"  # folder unknown: generic
    assert [m.name for m in mf.check_local(tmp_path, "animate", entries)] == ["vae.safetensors"]
    with pytest.raises(ValueError, match="does not exist"):
        mf.check_local(tmp_path / "nope", None, entries)


def test_check_local_mapping_and_lookup(tmp_path):
    entries = _tiny_manifest()
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "sam.pt").write_bytes(b"x")
    missing = mf.check_local({"sam2": [tmp_path / "none", extra]}, "replace", entries)
    assert [m.name for m in missing] == ["vae.safetensors"]
    assert missing[0].folder_path is None and mf.models_root(missing) is None
    missing = mf.check_local({"sam2": [extra], "vae": [tmp_path / "v1", tmp_path / "v2"]}, "replace", entries)
    assert missing[0].location == os.path.join(str(tmp_path / "v1"), "")  # the first folder: where new files go
    lookup = lambda folder, name: str(extra / name) if folder == "vae" else None  # noqa: E731
    (extra / "vae.safetensors").write_bytes(b"x")
    assert [m.name for m in mf.check_local(lookup, None, entries)] == ["det.onnx", "sam.pt"]


def test_referenced_models_from_api_prompt():
    entries = mf.load_manifest()
    prompt = {
        "1": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "2": {"class_type": "UNETLoader", "inputs": {"unet_name": "my_own_dit.safetensors", "weight_dtype": "default"}},
        "3": {"class_type": "WAK_PoseModelLoader", "inputs": {"detector": "yolov10m.onnx", "device": "cuda"}},
        "4": {"class_type": "LoraLoaderModelOnly",
              "inputs": {"lora_name": "Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors",
                         "model": ["2", 0]}},
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
    }
    refs = mf.referenced_models(prompt, entries)
    assert [(e.folder, e.name) for e in refs] == [
        ("vae", "wan_2.1_vae.safetensors"), ("diffusion_models", "my_own_dit.safetensors"),
        ("detection", "yolov10m.onnx"),
        ("loras", "Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors")]
    assert refs[1].url is None and refs[2].url.endswith("/yolov10m.onnx") and refs[3].url


def test_referenced_onnx_brings_its_external_data():
    """Picking the ViTPose-H graph also needs its external-data file, in the same (sub)folder."""
    entries = mf.load_manifest()
    for value, expect in (("vitpose_h_wholebody_model.onnx", "vitpose_h_wholebody_data.bin"),
                          ("pose/vitpose_h_wholebody_model.onnx", "pose/vitpose_h_wholebody_data.bin")):
        prompt = {"1": {"class_type": "WAK_PoseModelLoader", "inputs": {"pose_model": value}}}
        refs = mf.referenced_models(prompt, entries)
        assert [(e.folder, e.name) for e in refs] == [("detection", value), ("detection", expect)]
        assert refs[1].url.endswith("/vitpose_h_wholebody_data.bin")
    prompt = {"1": {"class_type": "WAK_PoseModelLoader", "inputs": {"pose_model": "vitpose-l-wholebody.onnx"}}}
    assert [e.name for e in mf.referenced_models(prompt, entries)] == ["vitpose-l-wholebody.onnx"]


# --- download ------------------------------------------------------------------------------------
class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files``; honours ``Range: bytes=N-`` (206) unless ``ranges`` is off; ``drop_after``
    closes the connection after that many body bytes of the next response (then resets itself)."""
    files: dict[str, bytes] = {}
    ranges = True
    drop_after: int | None = None
    seen_ranges: list = []
    json_routes: dict[str, object] = {}

    def do_GET(self):  # noqa: N802
        if self.path in self.json_routes:
            body = json.dumps(self.json_routes[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rng = self.headers.get("Range")
        type(self).seen_ranges.append(rng)
        start = 0
        if rng and self.ranges:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        drop = type(self).drop_after
        if drop is not None:
            type(self).drop_after = None
            self.wfile.write(chunk[:drop])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # a dropped connection mid-file
            return
        self.wfile.write(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture()
def file_server():
    payload = os.urandom(300_000)
    _Files.files = {"/m/tiny.onnx": payload}
    _Files.ranges, _Files.drop_after, _Files.seen_ranges, _Files.json_routes = True, None, [], {}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", payload
    finally:
        srv.shutdown()
        srv.server_close()


def _entry(base, **kw):
    return mf.ModelEntry("tiny.onnx", "detection", f"{base}/m/tiny.onnx", **kw)


def test_download_checksum_match(tmp_path, file_server):
    base, payload = file_server
    digest = hashlib.sha256(payload).hexdigest()
    lines = []
    path = mf.download(_entry(base, sha256=digest, size_bytes=len(payload), verified=True), tmp_path,
                       progress=lines.append, chunk_size=65536)
    assert path == tmp_path / "detection" / "tiny.onnx"
    assert path.read_bytes() == payload
    assert not list(tmp_path.rglob("*.part"))
    lock = mf.read_lock(tmp_path)["files"]["detection/tiny.onnx"]
    assert lock["sha256"] == digest and lock["verified"] is True and lock["size_bytes"] == len(payload)
    assert any("verified" in line for line in lines)
    # a second call keeps the file and re-checks it
    again = mf.download(_entry(base, sha256=digest), tmp_path, progress=lines.append)
    assert again == path and "matches" in lines[-1]


def test_download_checksum_mismatch_leaves_nothing(tmp_path, file_server):
    base, payload = file_server
    wrong = hashlib.sha256(payload + b"!").hexdigest()
    with pytest.raises(mf.ChecksumError, match="sha256"):
        mf.download(_entry(base, sha256=wrong), tmp_path, progress=lambda s: None)
    assert not (tmp_path / "detection" / "tiny.onnx").exists()
    assert not list(tmp_path.rglob("*.part"))
    assert not (tmp_path / mf.LOCK_NAME).exists()
    with pytest.raises(mf.ChecksumError, match="bytes"):
        mf.download(_entry(base, size_bytes=len(payload) - 1), tmp_path, progress=lambda s: None)
    assert not list((tmp_path / "detection").iterdir())


def test_download_without_checksum_records_lock(tmp_path, file_server):
    base, payload = file_server
    lines = []
    path = mf.download(_entry(base), tmp_path, progress=lines.append)
    assert path.read_bytes() == payload
    lock = json.loads((tmp_path / mf.LOCK_NAME).read_text())["files"]["detection/tiny.onnx"]
    assert lock["sha256"] == hashlib.sha256(payload).hexdigest()
    assert lock["verified"] is False and lock["url"].endswith("/m/tiny.onnx")
    assert "could not be verified" in lines[-1] and lock["sha256"] in lines[-1]


def test_download_http_error_and_unknown_name(tmp_path, file_server):
    base, _ = file_server
    bad = mf.ModelEntry("gone.onnx", "detection", f"{base}/m/gone.onnx")
    with pytest.raises(mf.DownloadError, match="gone.onnx"):
        mf.download(bad, tmp_path, progress=lambda s: None)
    assert not list(tmp_path.rglob("gone.onnx*"))
    with pytest.raises(ValueError, match="not in the model manifest"):
        mf.download("no_such_model.safetensors", tmp_path, progress=lambda s: None)


def test_download_resumes_after_a_dropped_connection(tmp_path, file_server):
    """The connection drops mid-file: the .part stays, the next call asks for the rest with a Range
    request and the whole file has the right sha256."""
    base, payload = file_server
    digest = hashlib.sha256(payload).hexdigest()
    entry = _entry(base, sha256=digest, size_bytes=len(payload), verified=True)
    _Files.drop_after = 123_457
    lines = []
    with pytest.raises(mf.DownloadError, match="run the command again to resume"):
        mf.download(entry, tmp_path, progress=lines.append, chunk_size=4096, timeout=10)
    part = tmp_path / "detection" / "tiny.onnx.part"
    assert part.read_bytes() == payload[:123_457]
    assert not (tmp_path / "detection" / "tiny.onnx").exists() and not (tmp_path / mf.LOCK_NAME).exists()
    path = mf.download(entry, tmp_path, progress=lines.append, chunk_size=4096, timeout=10)
    assert _Files.seen_ranges == [None, "bytes=123457-"]
    assert path.read_bytes() == payload and not part.exists()
    assert mf.read_lock(tmp_path)["files"]["detection/tiny.onnx"]["sha256"] == digest
    assert any("resuming at" in line for line in lines)


def test_download_resume_without_range_support_restarts(tmp_path, file_server):
    base, payload = file_server
    part = tmp_path / "detection" / "tiny.onnx.part"
    part.parent.mkdir()
    part.write_bytes(b"\0" * 1000)  # stale bytes that must not end up in the file
    _Files.ranges = False
    lines = []
    path = mf.download(_entry(base), tmp_path, progress=lines.append, chunk_size=4096)
    assert path.read_bytes() == payload and not part.exists()
    assert mf.read_lock(tmp_path)["files"]["detection/tiny.onnx"]["sha256"] == hashlib.sha256(payload).hexdigest()
    assert any("starting again" in line for line in lines)
    # a .part as long as the file (the range is past the end: 416) starts again too
    _Files.ranges = True
    path.unlink()
    part.write_bytes(os.urandom(len(payload)))
    assert mf.download(_entry(base), tmp_path, progress=lines.append).read_bytes() == payload


def test_resumed_file_with_a_wrong_checksum_is_removed(tmp_path, file_server):
    base, payload = file_server
    part = tmp_path / "detection" / "tiny.onnx.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 5000)  # not the file's first bytes
    with pytest.raises(mf.ChecksumError):
        mf.download(_entry(base, sha256=hashlib.sha256(payload).hexdigest()), tmp_path, progress=lambda s: None)
    assert not list((tmp_path / "detection").iterdir())


@pytest.mark.parametrize("url, want", [
    ("https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/vae/wan_2.1_vae.safetensors",
     ("Comfy-Org/Wan_2.1_ComfyUI_repackaged", "main", "split_files/vae/wan_2.1_vae.safetensors", None)),
    ("https://huggingface.co/Wan-AI/Wan2.2-Animate-14B/resolve/abc123/process_checkpoint/det/yolov10m.onnx",
     ("Wan-AI/Wan2.2-Animate-14B", "abc123", "process_checkpoint/det/yolov10m.onnx", None)),
    ("https://huggingface.co/datasets/u/d/resolve/main/a%20b.bin", ("u/d", "main", "a b.bin", "dataset")),
    ("https://huggingface.co/u/r/blob/main/x.bin", None),
    ("https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt", None),
    ("http://huggingface.co/u/r/resolve/main/x.bin", None),
])
def test_hf_location(url, want):
    assert mf.hf_location(url) == want


def test_hf_urls_go_through_huggingface_hub_and_land_in_the_models_folder(tmp_path, monkeypatch):
    """With huggingface_hub importable, a huggingface.co file is fetched by hf_hub_download (its
    resume, token and cache) and placed into the models folder as a real file (hard link or copy,
    never a symbolic link), checked and recorded like a plain download."""
    import types

    payload = os.urandom(50_000)
    cache = tmp_path / "hf-cache"
    calls = []

    def fake_hf_hub_download(repo_id, filename, revision=None, repo_type=None, **kw):
        calls.append((repo_id, filename, revision, repo_type))
        blob = cache / repo_id / filename
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(payload)
        return str(blob)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=fake_hf_hub_download))
    url = "https://huggingface.co/org/repo/resolve/main/split/files/tiny.onnx"
    entry = mf.ModelEntry("tiny.onnx", "detection", url, sha256=hashlib.sha256(payload).hexdigest(), verified=True)
    models = tmp_path / "models"
    lines = []
    path = mf.download(entry, models, progress=lines.append)
    assert calls == [("org/repo", "split/files/tiny.onnx", "main", None)]
    assert path == models / "detection" / "tiny.onnx" and path.read_bytes() == payload
    assert not path.is_symlink() and not list(models.rglob("*.part"))
    assert mf.read_lock(models)["files"]["detection/tiny.onnx"]["verified"] is True
    assert "huggingface_hub" in lines[0] and "verified" in lines[-1]
    # a file that does not match the manifest is not left in the models folder
    path.unlink()
    bad = dataclasses_replace(entry, sha256="0" * 64)
    with pytest.raises(mf.ChecksumError):
        mf.download(bad, models, progress=lines.append)
    assert not path.exists()
    # its errors become a DownloadError naming the file
    def failing(**kw):
        raise type("GatedRepoError", (Exception,), {})("401 Client Error")
    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=failing))
    with pytest.raises(mf.DownloadError, match=r"tiny.onnx.*GatedRepoError.*HF_TOKEN"):
        mf.download(entry, models, progress=lines.append)
    # use_hf=False (or no huggingface_hub) takes the plain HTTP path
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert mf._hf_download_function() is None


def dataclasses_replace(entry, **kw):
    import dataclasses

    return dataclasses.replace(entry, **kw)


def test_check_server_names_the_servers_absolute_folders(file_server):
    """``check_server`` asks the host's GET /experiment/models for its folders: a missing file is
    named with the server's real folder; a host without that route gives the generic one."""
    base, _ = file_server
    _Files.json_routes = {
        "/models/detection": ["yolo.onnx"], "/models/vae": [],
        "/experiment/models": [{"name": "detection", "folders": ["/x/det", "/srv/comfy/models/detection"]},
                               {"name": "vae", "folders": ["/srv/comfy/models/vae"]}]}
    entries = [mf.ModelEntry("yolo.onnx", "detection", "https://e.invalid/yolo.onnx", workflows=("animate",)),
               mf.ModelEntry("pose.onnx", "detection", "https://e.invalid/pose.onnx", workflows=("animate",)),
               mf.ModelEntry("v.safetensors", "vae", "https://e.invalid/v.safetensors", workflows=("animate",)),
               mf.ModelEntry("s.pt", "sam2", "https://e.invalid/s.pt", workflows=("animate",))]
    missing = mf.check_server(base, "animate", entries)
    assert [(m.name, m.reason, m.location) for m in missing] == [
        ("pose.onnx", "absent", "/srv/comfy/models/detection/"), ("v.safetensors", "absent", "/srv/comfy/models/vae/"),
        ("s.pt", "folder_not_registered", "ComfyUI/models/sam2/")]
    assert mf.models_root(missing[:2]) == "/srv/comfy/models" and mf.models_root(missing) is None
    del _Files.json_routes["/experiment/models"]
    assert [m.location for m in mf.check_server(base, "animate", entries)][:2] == [
        "ComfyUI/models/detection/", "ComfyUI/models/vae/"]


def test_preferred_folder_is_the_one_named_like_the_kind():
    # ComfyUI 0.3.75 lists models/unet before models/diffusion_models
    assert mf.preferred_folder("diffusion_models", ["/c/models/unet", "/c/models/diffusion_models"]) == \
        "/c/models/diffusion_models"
    assert mf.preferred_folder("text_encoders", ["/c/models/text_encoders", "/c/models/clip"]) == \
        "/c/models/text_encoders"
    assert mf.preferred_folder("vae", ["/mine/weights", "/c/models/vae"]) == "/c/models/vae"
    assert mf.preferred_folder("loras", ["/mine/lora_files"]) == "/mine/lora_files"
    assert mf.preferred_folder("loras", []) is None


def test_models_root_with_subfolder_names():
    m = mf._missing(mf.ModelEntry("Lightx2v/x.safetensors", "loras", None), folder_path="/m/loras")
    assert m.location == "/m/loras/Lightx2v/"
    assert mf.models_root([m]) == "/m"
    assert mf.models_root([mf._missing(mf.ModelEntry("a", "loras", None), folder_path="/elsewhere/my_loras")]) is None
