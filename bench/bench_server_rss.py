"""Resident memory of a real ComfyUI server running a shipped workflow with the tiny models.

    python bench/bench_server_rss.py [--workflow replace] [--threads N] [--runs 1]

Starts the host (``main.py --cpu``) with this pack and the tests' tiny models, then samples the
server process's RSS 50 times a second while the workflow (the tests' tiny version: 9 frames, 1
step) runs, and prints: RSS when idle after start, the peak of each node (the node the server says
it is executing), the overall peak and the RSS when the queue is empty again. Extra ``--env
KEY=VALUE`` pairs go to the server (e.g. ``OMP_NUM_THREADS=1``) to see what a setting changes.

Measured on a 2-core CPU (replace workflow, 9 frames): idle 0.9 GB after start (host + torch
imports), at most 1.5 GB through pose extraction, SAM2, mask shaping and model loading, 6.65 GB
peak inside the sampler, 1.66 GB after the job. The sampler's peak is the host's face motion
encoder (the official StyleGAN-style image encoder of Wan-Animate, fed 8 face crops of 512x512 at
a time, in fp32 on the CPU): one 8-face call alone takes RSS from 0.9 to 6.1 GB (about 0.65 GB per
face: 1 face 1.55 GB, 2 faces 2.2 GB, 16 faces 11.2 GB), whatever the video size.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT / "tests", ROOT / "scripts", ROOT / "bench"):
    sys.path.insert(0, str(p))

from benchutil import ServerRss, fill_widget_defaults, status_mib  # noqa: E402


def tiny_models() -> dict:
    import comfy_host
    import tiny_models as factory

    folder = comfy_host.cache_dir() / "tiny-models"
    paths = factory.write_all(folder)
    paths.update(factory.write_pose_models(folder))
    paths.update(factory.write_sam2(folder))
    paths["root"] = folder
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflow", default="replace")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--env", nargs="*", default=[])
    args = ap.parse_args()
    for item in args.env:
        key, _, value = item.partition("=")
        os.environ[key] = value

    import websocket
    from host_harness import HostServer, host_dir
    from models_for_prompt import tiny_prompt

    tiny = tiny_models()
    base = pathlib.Path(tempfile.mkdtemp(prefix="wak-rss-"))
    server = HostServer(host_dir(), base, tiny["root"])
    server.start()
    pid = server.proc.pid
    meter = ServerRss(pid)

    try:
        time.sleep(2)
        idle = status_mib(pid)
        print(f"idle after start: {idle:.0f} MiB, threads {len(os.listdir(f'/proc/{pid}/task'))}")
        api = json.loads((ROOT / "workflows" / "api" / f"{args.workflow}.json").read_text())
        prompt = tiny_prompt(api, server, tiny)
        info = server.get_json("/object_info")
        fill_widget_defaults(prompt, info)
        titles = {k: f"{v['class_type']} ({v.get('_meta', {}).get('title', '')})" for k, v in prompt.items()}
        meter.start()
        for run in range(args.runs):
            client = uuid.uuid4().hex
            ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client}", timeout=900)
            status, body = server.post_json("/prompt", {"prompt": prompt, "client_id": client})
            assert status == 200, body
            while True:
                raw = ws.recv()
                if not isinstance(raw, str):
                    continue
                msg = json.loads(raw)
                data = msg.get("data", {})
                if msg["type"] == "execution_error":
                    raise SystemExit(json.dumps(data)[:3000])
                if msg["type"] == "executing":
                    node = data.get("node")
                    if node is None and data.get("prompt_id") == body["prompt_id"]:
                        break
                    meter.node = titles.get(node, str(node))
            ws.close()
            meter.node = f"(idle after run {run + 1})"
            time.sleep(1.5)
        meter.stop()
        print("peak RSS per step (MiB):")
        for node, (peak, _) in meter.per_node().items():
            print(f"  {peak:8.0f}  {node}")
        top = meter.top()
        print(f"overall peak {top[1]:.0f} MiB during {top[2]}; after: {meter.samples[-1][1]:.0f} MiB; "
              f"threads {len(os.listdir(f'/proc/{pid}/task'))}")
    finally:
        meter.stop()
        server.stop()


if __name__ == "__main__":
    main()
