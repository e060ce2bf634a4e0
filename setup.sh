#!/usr/bin/env bash
# Set-up on a fresh Debian/Ubuntu machine: installs what is missing, skips what is there.
#   ./setup.sh            Deno 2.9.6 (from npm) and Mesa's Vulkan driver (lavapipe, from apt)
#   ./setup.sh --jupyter  also Jupyter (Debian packages) and the Deno kernel, for notebooks/
#   ./setup.sh --browser  also Chromium (Debian's chromium), for the web page's browser tests
#   ./setup.sh --torch    also Debian's python3-torch, for the PyTorch exactness tests (LoRA, NF4)
# Idempotent and fast when everything is already installed. Used by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")"

DENO_VERSION=2.9.6
JUPYTER=0
BROWSER=0
TORCH=0
for arg in "$@"; do
  case "$arg" in
    --jupyter) JUPYTER=1 ;;
    --browser) BROWSER=1 ;;
    --torch) TORCH=1 ;;
    -h | --help)
      sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup.sh: unknown option '$arg' (valid: --jupyter, --browser, --torch, --help)" >&2
      exit 2
      ;;
  esac
done

# Root runs apt directly; others go through sudo when it exists.
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup.sh: not root and no sudo; install the packages below by hand" >&2
  fi
fi

apt_updated=0
apt_install() { # apt_install pkg... (only the missing ones)
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  echo "== apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ((!apt_updated)); then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Deno from the npm registry (JSR and deno.land downloads are not needed).
if ! command -v deno >/dev/null || [[ "$(deno --version | head -1)" != "deno ${DENO_VERSION} "* ]]; then
  if ! command -v npm >/dev/null; then
    echo "setup.sh: npm is missing; install Node.js (apt-get install nodejs npm) and rerun" >&2
    exit 1
  fi
  echo "== npm: installing deno ${DENO_VERSION}"
  npm install -g "deno@${DENO_VERSION}" --allow-scripts=deno >/dev/null 2>&1 ||
    npm install -g "deno@${DENO_VERSION}" >/dev/null
  hash -r
fi

# WebGPU on a CPU-only machine: Mesa's software Vulkan driver (lavapipe).
apt_install mesa-vulkan-drivers libvulkan1

if ((JUPYTER)); then
  apt_install jupyter-client jupyter-nbconvert python3-nbclient python3-ipykernel
  kernels="$(jupyter kernelspec list 2>/dev/null || true)"
  if ! grep -q '^ *deno ' <<<"$kernels"; then
    echo "== registering the Deno Jupyter kernel"
    deno jupyter --install >/dev/null
  fi
fi

# Headless Chromium for tests/web_*_test.ts (WebGPU on its bundled SwiftShader; puppeteer-core
# drives it; no browser download).
if ((BROWSER)); then
  apt_install chromium
fi

# tests/lora_torch_test.ts, tests/lora_model_torch_test.ts and tests/nf4_reference_test.ts run
# PyTorch (skipped without it, unless MST_REQUIRE_TORCH=1 as .ci/run sets).
if ((TORCH)); then
  apt_install python3-torch
fi

# Fetch the npm dependencies once, so the first task does not pause for them.
deno install --quiet >/dev/null 2>&1 || true

echo "setup: $(deno --version | head -1), Vulkan driver ok$( ((JUPYTER)) && echo ', Jupyter + Deno kernel ok')$( ((BROWSER)) && echo ', Chromium ok')$( ((TORCH)) && echo ', python3-torch ok')"
