#!/usr/bin/env bash
# Pack what bench/bench_sampler_gpu.py needs on a GPU machine that has PyTorch but no network into
# .gpu/ (git-ignored): the host tree (ComfyUI 0.3.75 from the cache, or $COMFYUI_DIR; code only) and
# wheels for the host imports such an image lacks (av, torchsde, trampoline; Python 3.12, x86-64).
#
#   bash bench/gpu_bundle.sh            # here, once
#   # then on the GPU machine, from the repository root, with .gpu carried along:
#   mkdir -p .gpu/host .gpu/site && tar -xzf .gpu/host.tgz -C .gpu/host &&
#   python3 -m pip install -q --no-index --no-deps --no-compile --target .gpu/site .gpu/*.whl &&
#   PYTHONPATH="$PWD/.gpu/site" COMFYUI_DIR="$PWD/.gpu/host/ComfyUI" PYTHONUNBUFFERED=1 \
#     python3 bench/bench_sampler_gpu.py --offline --json "$OUT/gpu.json"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
host=${COMFYUI_DIR:-$($PY -c 'import sys; sys.path.insert(0, "scripts"); import comfy_host; print(comfy_host.find_host())')}
mkdir -p .gpu
rm -rf .gpu/*.whl .gpu/host.tgz .gpu/host .gpu/site
tar -czf .gpu/host.tgz --exclude='__pycache__' --exclude='./temp' --exclude='./output' --exclude='./input' \
    --exclude='./tests' --exclude='./tests-unit' --exclude='./custom_nodes' --exclude='./models' \
    --exclude='./extra_model_paths.yaml' --transform 's,^\.,ComfyUI,' -C "$host" .
$PY -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu "av==16.0.1" "torchsde==0.2.6" "trampoline==0.1.2"
du -sh .gpu
