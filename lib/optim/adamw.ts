/**
 * AdamW over a model's parameters (PyTorch semantics: bias correction, decoupled weight
 * decay), with global gradient-norm clipping, and the optimizer-in-backward mode that
 * updates each parameter and frees its gradient as soon as the gradient is complete.
 *
 * Weight decay applies to matrices only (norm weights and biases are not decayed).
 * Global clipping needs every gradient at once, so it is off in optimizer-in-backward mode.
 * Frozen parameters (`Parameter.frozen`: LoRA's base weights) are skipped: no moments, no update.
 *
 * A full step updates parameters of similar sizes in groups, one dispatch per group
 * ({@link adamwUpdateMulti}; as many tensors as the device's storage-binding limit allows), with
 * the same update of every element as the one-parameter kernel. A step that still has to create
 * moments (the first) updates one parameter at a time instead, so each parameter's moments are
 * allocated just before its gradient is freed, as before: the allocation sequence and the peak
 * do not depend on the group size, hence not on the device's limits.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import type { Parameter } from "../nn/parameter.ts";
import { adamwGroups, adamwGroupSize, adamwUpdate, adamwUpdateMulti } from "../ops/adamw.ts";
import { sumSquares } from "../ops/reduce.ts";

/** Hyper-parameters. */
export interface AdamWOptions {
  /** Learning rate. */
  lr: number;
  /** Decay rate of the first-moment average. */
  beta1: number;
  /** Decay rate of the second-moment average. */
  beta2: number;
  /** Added to the denominator √v̂ for numerical stability. */
  eps: number;
  /** Decoupled weight decay (applied to matrices only). */
  weightDecay: number;
  /** Global gradient-norm clip; 0 = off. */
  maxGradNorm: number;
}

/** Defaults used by the tasks. */
export const DEFAULT_ADAMW: AdamWOptions = {
  lr: 3e-3,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  maxGradNorm: 1.0,
};

/** The optimizer; `step` counts updates (bias correction uses it). */
export class AdamW {
  /** Number of completed optimizer steps. */
  step = 0;
  /**
   * Throws unless every option is a finite number ≥ 0.
   * @param dev The device.
   * @param opts Hyper-parameters (default {@link DEFAULT_ADAMW}).
   */
  constructor(readonly dev: Device, readonly opts: AdamWOptions = DEFAULT_ADAMW) {
    for (const k of ["lr", "beta1", "beta2", "eps", "weightDecay", "maxGradNorm"] as const) {
      if (!Number.isFinite(opts[k]) || opts[k] < 0) {
        throw new Error(`AdamW: ${k} must be a finite number >= 0, got ${opts[k]}`);
      }
    }
  }

  /**
   * Updates one parameter at optimizer step `t` (1-based) and frees its gradient. Moments are
   * f32; with a master weight (mixed precision) the master is updated and the f16 working copy
   * rewritten. `invScale` undoes a loss scale (the gradient and `clip.normSq` are scaled).
   */
  update(
    p: Parameter,
    t: number,
    clip?: { normSq: Tensor; maxNorm: number },
    invScale = 1,
  ): void {
    if (!p.grad || p.frozen) return;
    const dev = this.dev;
    p.m ??= dev.zeros(p.shape, { tag: "optimizer", name: `${p.name}.exp_avg`, dtype: "f32" });
    p.v ??= dev.zeros(p.shape, { tag: "optimizer", name: `${p.name}.exp_avg_sq`, dtype: "f32" });
    adamwUpdate(dev, p.master ?? p.value, p.grad, p.m, p.v, {
      work: p.master ? p.value : undefined,
      invScale,
      lr: this.opts.lr,
      beta1: this.opts.beta1,
      beta2: this.opts.beta2,
      eps: this.opts.eps,
      weightDecay: p.shape.length >= 2 ? this.opts.weightDecay : 0,
      step: t,
      clip,
    });
    p.dropGrad();
  }

  /**
   * A full step over all parameters with accumulated gradients (clipped globally).
   * `scaled`: gradients of a loss multiplied by `scaled.scale`, with `normSq` their squared
   * global norm already computed (the loss scaler's overflow check); it is used for clipping
   * and left to the caller.
   */
  stepAll(params: readonly Parameter[], scaled?: { scale: number; normSq: Tensor }): void {
    const t = ++this.step;
    const withGrad = params.filter((p) => p.grad && !p.frozen);
    let clip: { normSq: Tensor; maxNorm: number } | undefined;
    if (this.opts.maxGradNorm > 0 && withGrad.length > 0) {
      clip = {
        normSq: scaled?.normSq ?? sumSquares(this.dev, withGrad.map((p) => p.grad!)),
        maxNorm: this.opts.maxGradNorm,
      };
    }
    const invScale = 1 / (scaled?.scale ?? 1);
    if (withGrad.every((p) => p.m && p.v)) this.#grouped(withGrad, t, clip, invScale);
    else for (const p of withGrad) this.update(p, t, clip, invScale);
    if (clip && !scaled) clip.normSq.dispose();
  }

  /**
   * Updates parameters whose moments exist: tensors of similar sizes (same gradient storage, all
   * with or all without a working copy, at most {@link adamwGroupSize}) in one dispatch each
   * ({@link adamwGroups}), then frees the gradients in the parameters' order.
   */
  #grouped(
    params: readonly Parameter[],
    t: number,
    clip: { normSq: Tensor; maxNorm: number } | undefined,
    invScale: number,
  ): void {
    const o = this.opts;
    const hp = { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, step: t, clip, invScale };
    // groups with working copies take fewer tensors; one bound for all is simpler and as good
    // (in mixed precision every parameter has one)
    const most = adamwGroupSize(this.dev, {
      clip: !!clip,
      work: params.some((p) => p.master !== null),
    });
    // one gradient storage, working copies or none, sizes all multiples of 4 (vec4) or not
    const keys = params.map((p) => {
      const size = (p.master ?? p.value).size;
      return { size, key: `${p.grad!.dtype}/${p.master !== null}/${size % 4 === 0}` };
    });
    for (const g of adamwGroups(keys, most)) {
      if (g.length === 1) {
        const p = params[g[0]];
        adamwUpdate(this.dev, p.master ?? p.value, p.grad!, p.m!, p.v!, {
          ...hp,
          work: p.master ? p.value : undefined,
          weightDecay: p.shape.length >= 2 ? o.weightDecay : 0,
        });
        continue;
      }
      adamwUpdateMulti(
        this.dev,
        g.map((i) => params[i]).map((p) => ({
          param: p.master ?? p.value,
          grad: p.grad!,
          m: p.m!,
          v: p.v!,
          work: p.master ? p.value : undefined,
          weightDecay: p.shape.length >= 2 ? o.weightDecay : 0,
        })),
        hp,
      );
    }
    for (const p of params) p.dropGrad();
  }
}
