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
exec python3 -m pytest -q "$@"
