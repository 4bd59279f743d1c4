#!/usr/bin/env bash
# Install what the tests need, then run them against a real ComfyUI host.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import sys
sys.path.insert(0, "scripts")
import comfy_host
comfy_host.ensure_torch()
comfy_host.ensure_pack_requirements(test=True)
host = comfy_host.find_host()
comfy_host.ensure_host_requirements(host)
print(f"[wan-animate-kit] host: {host}", file=sys.stderr)
PY
# The workflow tests load the shipped graphs in the real ComfyUI frontend with headless Chromium.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[wan-animate-kit] installing chromium (apt) for the frontend tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "[wan-animate-kit] chromium could not be installed: the frontend tests will be skipped" >&2
fi
# The shipped prompts are the official Chinese ones: without a CJK font the screenshots show empty squares.
if ! (command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh 2>/dev/null)" ]) \
    && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[wan-animate-kit] installing fonts-noto-cjk (apt) so the browser draws the Chinese prompts" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null) \
    || echo "[wan-animate-kit] fonts-noto-cjk could not be installed: prompts in screenshots may show as squares" >&2
fi
exec python3 -m pytest -q "$@"
