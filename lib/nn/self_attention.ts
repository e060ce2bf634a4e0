/**
 * Self-attention of the Llama family: q, k, v projections (optional bias, Qwen2), rotary
 * embedding, memory-efficient causal attention (grouped-query, optional sliding window and
 * logit soft-cap) and the output projection.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import type { ModelConfig } from "../config/model_config.ts";
import { attentionBackward, attentionForward, type AttentionOptions } from "../ops/attention.ts";
import {
  biasBackward,
  linearBackwardInput,
  linearBackwardInputAccumulate,
  linearBackwardInputPair,
  linearBackwardInputPairAccumulate,
  linearBackwardWeight,
  linearBackwardWeightPair,
  linearForward,
  linearForwardPair,
} from "../ops/linear.ts";
import { rope } from "../ops/rope.ts";
import { headsToSeq, seqToHeads } from "../ops/all_to_all.ts";
import { type Forward, type SeqLayer, view } from "./layer.ts";
import type { Parameter } from "./parameter.ts";

/** Projection weights (and Qwen2 biases) of one attention layer. */
export interface AttentionParams {
  q: Parameter; // (H·hd, d)
  k: Parameter; // (KV·hd, d)
  v: Parameter; // (KV·hd, d)
  o: Parameter; // (d, H·hd)
  qBias?: Parameter; // (H·hd)
  kBias?: Parameter; // (KV·hd)
  vBias?: Parameter; // (KV·hd)
}

/** Kept for backward: input, rotated q/k, v, output and the softmax statistics. */
export interface AttentionSaved {
  x: Tensor; // (S, d)
  q: Tensor; // (S, H·hd) after rotary
  k: Tensor; // (S, KV·hd) after rotary
  v: Tensor; // (S, KV·hd)
  o: Tensor; // (S, H·hd)
  lse: Tensor; // (H, S)
  /**
   * Under Ulysses SP (degree K > 1): q/k/v/o/lse above are the head-sharded ones — q, o
   * (S, H/K·hd), k, v (S, max(1, KV/K)·hd), lse (H/K, S) over all S rows — and this is the
   * attention output back in the rank's rows (S/K, H·hd), the output projection's input.
   */
  oLocal?: Tensor;
}

/**
 * What selective recomputation keeps of an attention layer's saved record: the attention
 * output and softmax statistics, so the recomputation skips the attention kernel (the
 * O(S²) part) and redoes only the projections and rotary embedding. Under Ulysses SP the
 * head-sharded output is kept and the recomputation redoes its all-to-all back to the rank's
 * rows (communication, not the S² compute), rather than keeping both layouts.
 */
export interface AttentionKept {
  o: Tensor; // (S, H·hd) (head-sharded under Ulysses SP: (S, H/K·hd), as in AttentionSaved)
  lse: Tensor; // (H, S)
}

/**
 * Backward of the q/k/v projections of `x` (S, d): for each (gradient g, weight W, bias) the
 * weight and bias gradients, and dx (S, d) = Σ g·W accumulated in place (no temporary). Two
 * consecutive projections of the same shape (k and v, or q and k without GQA) go together: one
 * pass for both weight gradients, one for both dx terms. Disposes every g and `x`; returns dx.
 */
export function qkvProjectionBackward(
  dev: Device,
  x: Tensor,
  pairs: [Tensor, Parameter, Parameter | undefined][],
  name: string,
): Tensor {
  const same = (a: Tensor, b: Tensor) =>
    a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  let dx: Tensor | null = null;
  for (let i = 0; i < pairs.length; i++) {
    const [g, w, b] = pairs[i];
    const next = pairs[i + 1];
    if (next && same(next[0], g) && same(next[1].value, w.value)) {
      const [g2, w2, b2] = next;
      linearBackwardWeightPair(dev, g, g2, x, w.gradFor(dev), w2.gradFor(dev));
      if (b) biasBackward(dev, g, b.gradFor(dev));
      if (b2) biasBackward(dev, g2, b2.gradFor(dev));
      if (dx === null) {
        dx = linearBackwardInputPair(dev, g, w.value, g2, w2.value, { name: `${name}.dx` });
      } else linearBackwardInputPairAccumulate(dev, g, w.value, g2, w2.value, dx);
      g.dispose();
      g2.dispose();
      i++;
      continue;
    }
    linearBackwardWeight(dev, g, x, w.gradFor(dev));
    if (b) biasBackward(dev, g, b.gradFor(dev));
    if (dx === null) dx = linearBackwardInput(dev, g, w.value, { name: `${name}.dx` });
    else linearBackwardInputAccumulate(dev, g, w.value, dx); // dx += g·W, no temporary
    g.dispose();
  }
  x.dispose();
  return dx!;
}

/** The attention sublayer (the pre-norm is the block's). */
export class SelfAttention implements SeqLayer<AttentionSaved> {
  readonly rowWise = false;
  readonly opts: AttentionOptions;
  /** KV heads replicated per rank under SP (K/KV when K > KV, else 1). */
  readonly #replicate: number;
  /**
   * @param sp Ulysses sequence-parallel degree K (default 1): the input holds this rank's S/K
   *   rows; q/k/v are exchanged (`lib/ops/all_to_all.ts`) so attention runs over all S rows for
   *   H/K heads (meta device only when K > 1).
   */
  constructor(
    readonly dev: Device,
    readonly name: string,
    readonly cfg: ModelConfig,
    readonly p: AttentionParams,
    window: number,
    readonly sp = 1,
  ) {
    this.#replicate = sp > cfg.kvHeads ? sp / cfg.kvHeads : 1;
    this.opts = {
      heads: cfg.heads / sp,
      kvHeads: Math.max(1, cfg.kvHeads / sp),
      headDim: cfg.headDim,
      scale: cfg.attnScale,
      window,
      softcap: cfg.attnSoftcap,
      name: `${name}.attn`,
    };
  }

  #rope(x: Tensor, heads: number, inverse: boolean, name: string): Tensor {
    const c = this.cfg;
    return rope(this.dev, x, { heads, headDim: c.headDim, theta: c.ropeTheta, inverse, name });
  }

  /**
   * Forward. With `kept` (selective recomputation: the output and statistics of an earlier
   * forward at the same input), the attention kernel is skipped and `kept` is taken over into
   * the saved record.
   */
  forward(x: Tensor, kept?: AttentionKept): Forward<AttentionSaved> {
    const { dev, p, cfg, name } = this;
    const q0 = linearForward(dev, x, p.q.value, p.qBias?.value, { name: `${name}.q` });
    const q = this.#rope(q0, cfg.heads, false, `${name}.q_rot`);
    q0.dispose();
    // k and v in one pass over x (without biases)
    const [k0, v] = p.kBias || p.vBias
      ? [
        linearForward(dev, x, p.k.value, p.kBias?.value, { name: `${name}.k` }),
        linearForward(dev, x, p.v.value, p.vBias?.value, { name: `${name}.v` }),
      ]
      : linearForwardPair(dev, x, p.k.value, p.v.value, { names: [`${name}.k`, `${name}.v`] });
    const k = this.#rope(k0, cfg.kvHeads, false, `${name}.k_rot`);
    k0.dispose();
    if (this.sp > 1) return this.#forwardSP(x, q, k, v, kept);
    const { out: o, lse } = kept
      ? { out: kept.o, lse: kept.lse }
      : attentionForward(dev, q, k, v, this.opts);
    const out = linearForward(dev, o, p.o.value, undefined, { name: `${name}.out` });
    return { out, saved: { x: view(x), q, k, v, o, lse } };
  }

  /** Ulysses: exchange q/k/v to head shards, attend over all S rows, exchange the output back. */
  #forwardSP(
    x: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    kept?: AttentionKept,
  ): Forward<AttentionSaved> {
    const { dev, p, cfg, name, sp } = this;
    const hd = cfg.headDim;
    const qg = seqToHeads(dev, q, sp, hd, `${name}.q_a2a`); // (S, H/K·hd)
    q.dispose();
    const kg = seqToHeads(dev, k, sp, hd, `${name}.k_a2a`, this.#replicate); // (S, KVl·hd)
    k.dispose();
    const vg = seqToHeads(dev, v, sp, hd, `${name}.v_a2a`, this.#replicate);
    v.dispose();
    const { out: og, lse } = kept // (S, H/K·hd)
      ? { out: kept.o, lse: kept.lse }
      : attentionForward(dev, qg, kg, vg, this.opts);
    const oLocal = headsToSeq(dev, og, sp, `${name}.o_a2a`); // (S/K, H·hd)
    const out = linearForward(dev, oLocal, p.o.value, undefined, { name: `${name}.out` });
    return { out, saved: { x: view(x), q: qg, k: kg, v: vg, o: og, lse, oLocal } };
  }

  backward(dy: Tensor, s: AttentionSaved): Tensor {
    const { dev, p, cfg, name } = this;
    linearBackwardWeight(dev, dy, s.oLocal ?? s.o, p.o.gradFor(dev));
    s.oLocal?.dispose();
    let dO = linearBackwardInput(dev, dy, p.o.value, { name: `${name}.do` });
    if (this.sp > 1) {
      const dOg = seqToHeads(dev, dO, this.sp, cfg.headDim, `${name}.do_a2a`);
      dO.dispose();
      dO = dOg;
    }
    let { dq, dk, dv } = attentionBackward(dev, dO, s.q, s.k, s.v, s.o, s.lse, this.opts);
    dO.dispose();
    for (const t of [s.q, s.k, s.v, s.o, s.lse]) t.dispose();
    if (this.sp > 1) {
      const back = (g: Tensor, what: string, replicate: number) => {
        const l = headsToSeq(dev, g, this.sp, `${name}.${what}_a2a`, replicate);
        g.dispose();
        return l;
      };
      dq = back(dq, "dq", 1);
      dk = back(dk, "dk", this.#replicate);
      dv = back(dv, "dv", this.#replicate);
    }
    const dq0 = this.#rope(dq, cfg.heads, true, `${name}.dq`);
    dq.dispose();
    const dk0 = this.#rope(dk, cfg.kvHeads, true, `${name}.dk`);
    dk.dispose();
    return qkvProjectionBackward(dev, s.x, [
      [dq0, p.q, p.qBias],
      [dk0, p.k, p.kBias],
      [dv, p.v, p.vBias],
    ], name);
  }
}
