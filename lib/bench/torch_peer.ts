/**
 * PyTorch on the CPU as a peer of the training-step benchmark: the same llama3-tiny step
 * (same config, same initial weights, same tokens, same AdamW) run by
 * `lib/bench/torch_llama.py` in a `python3` subprocess.
 *
 * The weights go over as a safetensors file (`lib/checkpoint/safetensors.ts`), the rest as a
 * JSON job file, both in a temporary directory removed afterwards. The script checks its
 * step-0 loss against ours before it times anything and fails on a mismatch, so a row is
 * only reported for the same computation. When no `python3` with `torch` is found (Debian:
 * `apt-get install python3-torch`), {@link findTorchPython} returns null and the bench skips
 * the row with a note.
 */

import { serializeSafetensors } from "../checkpoint/safetensors.ts";
import type { ModelConfig } from "../config/model_config.ts";
import type { Batch } from "../models/model.ts";
import type { AdamWOptions } from "../optim/adamw.ts";
import { median } from "./tfjs_peer.ts";

/** A python interpreter that can import torch, and the torch version. */
export interface TorchPython {
  /** Command to run. */
  python: string;
  /** `torch.__version__`. */
  version: string;
}

/** Result of {@link runTorchStep}. */
export interface TorchStepResult {
  /** Loss of every step (warm-up first). */
  losses: number[];
  /** Median ms of the timed steps. */
  msPerStep: number;
  /** Tokens per second at the median step. */
  tokensPerSec: number;
  /** Intra-op threads torch used. */
  threads: number;
  /** torch version. */
  version: string;
  /** LoRA runs: every adapter's values after the last step, by name. */
  adapters?: Map<string, Float32Array>;
}

/** LoRA fine-tuning in the peer (PEFT's semantics; see lib/bench/torch_llama.py). */
export interface TorchLora {
  /** Rank r. */
  r: number;
  /** alpha. */
  alpha: number;
  /** rsLoRA scaling alpha/√r. */
  rslora: boolean;
  /** Target modules, PEFT's names (`q_proj`, …, `down_proj`). */
  targets: string[];
}

const SCRIPT = new URL("./torch_llama.py", import.meta.url).pathname;

/**
 * The first of `$MST_TORCH_PYTHON`, `python3`, `/usr/bin/python3` that imports torch, or null.
 * (A pyenv `python3` shim often lacks Debian's `python3-torch`, hence the system path too.)
 */
export async function findTorchPython(): Promise<TorchPython | null> {
  const env = Deno.env.get("MST_TORCH_PYTHON");
  const candidates = [...(env ? [env] : []), "python3", "/usr/bin/python3"];
  for (const python of candidates) {
    try {
      const out = await new Deno.Command(python, {
        args: ["-c", "import torch; print(torch.__version__)"],
        stdout: "piped",
        stderr: "null",
      }).output();
      if (out.success) {
        return { python, version: new TextDecoder().decode(out.stdout).trim() };
      }
    } catch {
      // not installed: try the next candidate
    }
  }
  return null;
}

/**
 * Torch for a test: the interpreter, or null with a note saying why the test is skipped. With
 * `MST_REQUIRE_TORCH=1` (CI: `.ci/run`) a missing torch throws instead.
 */
export async function torchForTests(): Promise<{ py: TorchPython | null; skipNote: string }> {
  const py = await findTorchPython();
  if (py) return { py, skipNote: "" };
  if (Deno.env.get("MST_REQUIRE_TORCH") === "1") {
    throw new Error(
      "MST_REQUIRE_TORCH=1 but no python3 imports torch: run ./setup.sh --torch " +
        "(Debian's python3-torch) or set MST_TORCH_PYTHON",
    );
  }
  return {
    py: null,
    skipNote: " — SKIPPED: no python3 with torch (apt-get install python3-torch)",
  };
}

/**
 * Runs `warmup + steps` training steps of `cfg` in PyTorch from `weights` on `batch`, after
 * checking the step-0 loss against `expectLoss0` (relative `tolerance`). Throws with the
 * script's message when the check fails or the script does. With `lora`, `weights` holds the
 * adapters' initial values too (`<module>.lora_A.weight`, `<module>.lora_B.weight`), only they
 * train, and the result holds their final values.
 */
export async function runTorchStep(
  py: TorchPython,
  cfg: ModelConfig,
  weights: Map<string, { shape: number[]; data: Float32Array }>,
  batch: Batch,
  adamw: AdamWOptions,
  opts: {
    warmup: number;
    steps: number;
    expectLoss0: number;
    tolerance: number;
    lora?: TorchLora;
    threads?: number;
  },
): Promise<TorchStepResult> {
  const dir = await Deno.makeTempDir({ prefix: "mst-torch-peer-" });
  try {
    const weightsPath = `${dir}/weights.safetensors`;
    await Deno.writeFile(weightsPath, serializeSafetensors(weights));
    const jobPath = `${dir}/job.json`;
    await Deno.writeTextFile(
      jobPath,
      JSON.stringify({
        config: cfg,
        weights: weightsPath,
        ids: [...batch.ids],
        targets: [...batch.targets],
        adamw,
        warmup: opts.warmup,
        steps: opts.steps,
        threads: opts.threads ?? navigator.hardwareConcurrency,
        expectLoss0: opts.expectLoss0,
        tolerance: opts.tolerance,
        ...(opts.lora ? { lora: opts.lora } : {}),
      }),
    );
    const out = await new Deno.Command(py.python, {
      args: [SCRIPT, jobPath],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    if (!out.success) {
      throw new Error(
        `torch peer (${py.python} ${SCRIPT}) failed with status ${out.code}: ${
          dec.decode(out.stderr).trim().split("\n").slice(-3).join(" | ")
        }`,
      );
    }
    const line = dec.decode(out.stdout).trim().split("\n").at(-1) ?? "";
    const r = JSON.parse(line) as {
      losses: (number | null)[];
      stepMs: number[];
      threads: number;
      torch: string;
      adapters?: Record<string, number[]>;
    };
    const ms = r.stepMs.length > 0 ? median(r.stepMs) : NaN;
    return {
      ...(r.adapters
        ? {
          adapters: new Map(
            Object.entries(r.adapters).map(([k, v]) => [k, Float32Array.from(v)]),
          ),
        }
        : {}),
      losses: r.losses.map((l) => l ?? NaN),
      msPerStep: ms,
      tokensPerSec: batch.ids.length / (ms / 1000),
      threads: r.threads,
      version: r.torch,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
