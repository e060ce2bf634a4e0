#!/usr/bin/env bash
# Counts the shader variants lavapipe compiles (LLVM modules) during a short training run and
# compares them with the pipelines the workbench created. They are equal when no driver-side
# specialisation happens (docs/architecture.md, "Parameter blocks and lavapipe's uniform
# inlining"); the driver overhead model counts one compiled shader per pipeline.
# Usage: tools/lavapipe_compiles.sh [S] [train flags…]   (default: 4096 --mst auto --checkpoint)
# Needs a C compiler (cc) and libLLVM-15 (Mesa 22.3's lavapipe).
set -euo pipefail
cd "$(dirname "$0")/.."
seq="${1:-4096}"
shift || true
flags=("$@")
[ ${#flags[@]} -eq 0 ] && flags=(--mst auto --checkpoint)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cc -O2 -shared -fPIC -o "$work/llvm_modules.so" tools/lavapipe/llvm_modules.c -ldl
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$work}" DENO_WEBGPU_BACKEND=vulkan
LLVM_MODULES_OUT="$work/modules.txt" LD_PRELOAD="$work/llvm_modules.so" \
  deno run -A tasks/train.ts llama3-tiny --steps 2 --seq "$seq" "${flags[@]}" --json >"$work/run.json"
pipelines="$(tail -n 1 "$work/run.json" | grep -o '"pipelines":[0-9]*' | cut -d: -f2)"
modules="$(wc -l <"$work/modules.txt")"
echo "S=$seq ${flags[*]}: $pipelines pipelines, $modules LLVM modules compiled by the driver"
[ "$pipelines" = "$modules" ] || { echo "the driver compiled extra shader variants" >&2; exit 1; }
