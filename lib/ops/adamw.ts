/** AdamW optimizer step (PyTorch semantics) with optional global-norm gradient clipping. */

import type { Device } from "../device/device.ts";
import { fillTemplate, kernelSource, Params } from "../device/kernel_source.ts";
import { expectShape, type Tensor } from "../device/tensor.ts";
import { ceilDiv, grid1d } from "./util.ts";

/** Hyper-parameters of one AdamW step. */
export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number t (for the bias corrections 1 − β^t). */
  step: number;
  /**
   * Clip by global norm: the gradient is scaled by min(1, maxNorm / (√normSq + 1e-6)), with
   * normSq (1) read on the device (e.g. from `sumSquares` of all gradients).
   */
  clip?: { normSq: Tensor; maxNorm: number };
  /**
   * 1 / loss scale (default 1): the gradient (and `clip.normSq`) are of the loss multiplied by
   * the scale, as in mixed precision with dynamic loss scaling.
   */
  invScale?: number;
  /**
   * Mixed precision: the f16 working copy of `param` (the f32 master weight), rewritten from
   * the updated master in the same pass.
   */
  work?: Tensor;
}

const CLIP_BINDING = "@group(0) @binding(4) var<storage, read> norm_sq: array<f32>;";
const CLIP_SCALE = "return min(1.0, p.max_norm / (sqrt(norm_sq[0]) * p.inv_scale + 1e-6));";
const workBinding = (b: number) =>
  `@group(0) @binding(${b}) var<storage, read_write> work: array<SF>;`;

/**
 * One AdamW step in place on `param`, `m` and `v` (all shaped like `param`):
 * p ← p − lr·wd·p; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 * p ← p − lr·(m/(1−β1^t)) / (√(v/(1−β2^t)) + eps).
 */
export function adamwUpdate(
  dev: Device,
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  opts: AdamWOptions,
): void {
  for (const [t, what] of [[grad, "grad"], [m, "m"], [v, "v"]] as const) {
    expectShape(t, param.shape, `adamwUpdate: ${what} (as param "${param.name}")`);
  }
  const { lr, beta1, beta2, eps, weightDecay, step, clip, work } = opts;
  const invScale = opts.invScale ?? 1;
  if (!(invScale > 0 && Number.isFinite(invScale))) {
    throw new Error(`adamwUpdate: invScale must be a finite number > 0, got ${invScale}`);
  }
  if (param.dtype !== "f32") {
    throw new Error(
      `adamwUpdate: "${param.name}" is ${param.dtype}; the updated weight (the master copy in ` +
        `mixed precision) and the moments must be f32`,
    );
  }
  if (work) expectShape(work, param.shape, `adamwUpdate: work (as param "${param.name}")`);
  if (!Number.isInteger(step) || step < 1) {
    throw new Error(`adamwUpdate: step must be an integer >= 1, got ${step}`);
  }
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) {
    throw new Error(`adamwUpdate: betas must lie in [0, 1), got ${beta1}, ${beta2}`);
  }
  if (clip) {
    expectShape(clip.normSq, [1], "adamwUpdate: clip.normSq");
    if (!(clip.maxNorm > 0)) {
      throw new Error(`adamwUpdate: clip.maxNorm must be > 0, got ${clip.maxNorm}`);
    }
  }
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  const n = param.size;
  const [nx, ny] = grid1d(ceilDiv(n, 256));
  dev.dispatch({
    kernel: "adamw",
    source: fillTemplate(kernelSource("adamw"), {
      CLIP_BINDING: clip ? CLIP_BINDING : "",
      CLIP_SCALE: clip ? CLIP_SCALE : "return 1.0;",
      WORK_BINDING: work ? workBinding(clip ? 5 : 4) : "",
      WORK_STORE: work ? "work[i] = SF(pi);" : "",
    }),
    bindings: [param, grad, m, v, ...(clip ? [clip.normSq] : []), ...(work ? [work] : [])],
    params: new Params().u32(n).f32(1 - lr * weightDecay).f32(beta1).f32(beta2).f32(eps)
      .f32(lr / bc1).f32(Math.sqrt(bc2)).f32(clip?.maxNorm ?? 0).u32(nx).f32(invScale),
    workgroups: [nx, ny],
  });
}
