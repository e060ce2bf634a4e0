/**
 * The PyTorch side of the LoRA exactness test: one LoRA layer (PEFT semantics, written in
 * `lib/bench/torch_lora.py` without the peft package) from given weights, its step-0 output
 * and gradients, and a few torch.optim.AdamW steps. Find the interpreter with
 * `findTorchPython` (lib/bench/torch_peer.ts); where torch is missing the caller skips.
 */

import type { AdamWOptions } from "../optim/adamw.ts";
import type { TorchPython } from "./torch_peer.ts";

/** One LoRA layer's job: shapes, f32 values (flat, row-major), loss weights R = dL/dy. */
export interface TorchLoraJob {
  S: number;
  N: number;
  K: number;
  r: number;
  alpha: number;
  rslora: boolean;
  x: ArrayLike<number>;
  w: ArrayLike<number>;
  bias?: ArrayLike<number>;
  a: ArrayLike<number>;
  b: ArrayLike<number>;
  /** R (S, N): the loss is Σ y∘R. */
  dy: ArrayLike<number>;
  /** AdamW steps to run. */
  steps: number;
  adamw: AdamWOptions;
}

/** What the script prints: step-0 y, dx, dA, dB; every step's loss; the final A and B. */
export interface TorchLoraResult {
  y: number[];
  dx: number[];
  dA: number[];
  dB: number[];
  losses: number[];
  A: number[];
  B: number[];
  torch: string;
}

const SCRIPT = new URL("./torch_lora.py", import.meta.url).pathname;

/**
 * Runs `lib/bench/torch_lora.py` on `jobs` in one process (torch is imported once); throws with
 * the script's last lines on failure.
 */
export async function runTorchLora(
  py: TorchPython,
  jobs: readonly TorchLoraJob[],
): Promise<TorchLoraResult[]> {
  const dir = await Deno.makeTempDir({ prefix: "mst-torch-lora-" });
  try {
    const path = `${dir}/job.json`;
    const list = (a?: ArrayLike<number>) => (a ? Array.from(a) : undefined);
    await Deno.writeTextFile(
      path,
      JSON.stringify(jobs.map((job) => ({
        ...job,
        x: list(job.x),
        w: list(job.w),
        bias: list(job.bias) ?? null,
        a: list(job.a),
        b: list(job.b),
        dy: list(job.dy),
      }))),
    );
    const out = await new Deno.Command(py.python, {
      args: [SCRIPT, path],
      stdout: "piped",
      stderr: "piped",
      env: { OMP_NUM_THREADS: "1" },
    }).output();
    const dec = new TextDecoder();
    if (!out.success) {
      throw new Error(
        `torch LoRA (${py.python} ${SCRIPT}) failed with status ${out.code}: ${
          dec.decode(out.stderr).trim().split("\n").slice(-3).join(" | ")
        }`,
      );
    }
    return JSON.parse(dec.decode(out.stdout).trim().split("\n").at(-1) ?? "") as TorchLoraResult[];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
