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
  linearBackwardInputPair,
  linearBackwardInputPairAccumulate,
  linearBackwardWeight,
  linearBackwardWeightPair,
  linearForwardPair,
} from "../ops/linear.ts";
import { rope } from "../ops/rope.ts";
import { headsToSeq, seqToHeads } from "../ops/all_to_all.ts";
import { type Forward, type SeqLayer, view } from "./layer.ts";
import { Parameter } from "./parameter.ts";
import {
  baseForward,
  baseInputGrad,
  type BaseWeight,
  biasTrainable,
  checkAdapter,
  isTrainable,
  type LoraAdapter,
  loraBackward,
  loraDown,
  loraInputGrad,
  loraUp,
} from "./lora.ts";

/** The four projections of an attention layer. */
export type AttentionProjection = "q" | "k" | "v" | "o";

/**
 * Projection weights (and Qwen2 biases) of one attention layer. Under LoRA a base weight is
 * frozen (a frozen Parameter, or an NF4 weight) and `lora` holds the adapters of the adapted
 * projections.
 */
export interface AttentionParams {
  q: BaseWeight; // (H·hd, d)
  k: BaseWeight; // (KV·hd, d)
  v: BaseWeight; // (KV·hd, d)
  o: BaseWeight; // (d, H·hd)
  qBias?: Parameter; // (H·hd)
  kBias?: Parameter; // (KV·hd)
  vBias?: Parameter; // (KV·hd)
  /** LoRA adapters by projection (absent: no adapter). */
  lora?: Partial<Record<AttentionProjection, LoraAdapter>>;
}

/** What the adapters keep: u = s·(x·Aᵀ) (rows, r) per adapted projection. */
export type LoraKept<P extends string> = Partial<Record<P, Tensor>>;

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
  /** The adapters' u per adapted projection (LoRA only; their inputs are x and o above). */
  lora?: LoraKept<AttentionProjection>;
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
 * One projection in {@link qkvProjectionBackward}: its output gradient g, base weight, bias, and
 * under LoRA its adapter and saved u.
 */
export type ProjectionGrad = [
  g: Tensor,
  w: BaseWeight,
  bias: Parameter | undefined,
  adapter?: LoraAdapter,
  u?: Tensor,
];

/**
 * Backward of the q/k/v projections of `x` (S, d): for each (gradient g, weight W, bias) the
 * weight and bias gradients (trainable ones: a frozen base or bias gets none), the adapter's
 * gradients when it has one, and dx (S, d) = Σ g·W (+ s·(g·B)·A per adapter) accumulated in
 * place (no temporary). Two consecutive projections of the same shape (k and v, or q and k
 * without GQA) with Parameter bases go together: one pass for both weight gradients, one for
 * both dx terms. Disposes every g, u and `x`; returns dx.
 */
export function qkvProjectionBackward(
  dev: Device,
  x: Tensor,
  pairs: ProjectionGrad[],
  name: string,
): Tensor {
  const same = (a: readonly number[], b: readonly number[]) =>
    a.length === b.length && a.every((d, i) => d === b[i]);
  let dx: Tensor | null = null;
  // the adapters' input-gradient terms, added once dx exists
  const pending: [Tensor, LoraAdapter][] = [];
  const adapt = (p: ProjectionGrad) => {
    const [g, , , ad, u] = p;
    if (ad) pending.push([loraBackward(dev, g, x, u!, ad, name), ad]);
  };
  for (let i = 0; i < pairs.length; i++) {
    const [g, w, b] = pairs[i];
    const next = pairs[i + 1];
    if (
      next && same(next[0].shape, g.shape) && w instanceof Parameter &&
      next[1] instanceof Parameter && same(next[1].shape, w.shape)
    ) {
      const [g2, w2, b2] = next;
      if (isTrainable(w) && isTrainable(w2)) {
        linearBackwardWeightPair(dev, g, g2, x, w.gradFor(dev), w2.gradFor(dev));
      } else {
        if (isTrainable(w)) linearBackwardWeight(dev, g, x, w.gradFor(dev));
        if (isTrainable(w2)) linearBackwardWeight(dev, g2, x, w2.gradFor(dev));
      }
      if (biasTrainable(b)) biasBackward(dev, g, b.gradFor(dev));
      if (biasTrainable(b2)) biasBackward(dev, g2, b2.gradFor(dev));
      adapt(pairs[i]);
      adapt(next);
      if (dx === null) {
        dx = linearBackwardInputPair(dev, g, w.value, g2, w2.value, { name: `${name}.dx` });
      } else linearBackwardInputPairAccumulate(dev, g, w.value, g2, w2.value, dx);
      g.dispose();
      g2.dispose();
      i++;
      continue;
    }
    if (isTrainable(w)) linearBackwardWeight(dev, g, x, w.gradFor(dev));
    if (biasTrainable(b)) biasBackward(dev, g, b.gradFor(dev));
    adapt(pairs[i]);
    // dx += g·W, no temporary
    dx = baseInputGrad(dev, g, w, dx === null ? { name: `${name}.dx` } : { out: dx });
    g.dispose();
  }
  for (const [g, ad] of pending) loraInputGrad(dev, g, ad, dx!);
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
   * @param p The projections' weights; under LoRA frozen bases (frozen Parameters or NF4) and
   *   `p.lora`'s adapters.
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
    for (const [which, ad] of Object.entries(p.lora ?? {})) {
      const w = p[which as AttentionProjection];
      if (!w) throw new Error(`${name}: LoRA adapter for unknown projection "${which}"`);
      if (ad) checkAdapter(`${name}.${which}_proj`, w.shape, ad.a, ad.b);
    }
  }

  /** True when at least one projection has a LoRA adapter. */
  get adapted(): boolean {
    return Object.values(this.p.lora ?? {}).some((a) => a !== undefined);
  }

  #rope(x: Tensor, heads: number, inverse: boolean, name: string): Tensor {
    const c = this.cfg;
    return rope(this.dev, x, { heads, headDim: c.headDim, theta: c.ropeTheta, inverse, name });
  }

  /** y += the adapter's term of projection `which` (if adapted), its u recorded in `lora`. */
  protected adapt(
    x: Tensor,
    which: AttentionProjection,
    y: Tensor,
    lora: LoraKept<AttentionProjection>,
  ): void {
    const ad = this.p.lora?.[which];
    if (!ad) return;
    const u = loraDown(this.dev, x, ad, `${this.name}.${which}_proj`);
    loraUp(this.dev, u, ad, y);
    lora[which] = u;
  }

  /** Projection `which` of x (+ bias, + the adapter's term): a new tensor `name`. */
  protected project(
    x: Tensor,
    which: AttentionProjection,
    bias: Parameter | undefined,
    name: string,
    lora: LoraKept<AttentionProjection>,
  ): Tensor {
    const y = baseForward(this.dev, x, this.p[which], bias?.value, name);
    this.adapt(x, which, y, lora);
    return y;
  }

  /** The saved record's `lora` field: present only when the layer has adapters. */
  protected loraField(lora: LoraKept<AttentionProjection>): { lora?: typeof lora } {
    return this.adapted ? { lora } : {};
  }

  /**
   * Backward of the output projection from its input `oIn` (and u when adapted): the weight
   * gradient (trainable base), the adapter's gradients, `release()` (the caller frees what only
   * the weight gradients read), then dO = dy·Wo (+ the adapter's term), a new tensor.
   */
  protected outputBackward(
    dy: Tensor,
    oIn: Tensor,
    u: Tensor | undefined,
    release: () => void,
  ): Tensor {
    const { dev, p, name } = this;
    if (isTrainable(p.o)) linearBackwardWeight(dev, dy, oIn, p.o.gradFor(dev));
    const ad = p.lora?.o;
    const g = ad ? loraBackward(dev, dy, oIn, u!, ad, `${name}.o_proj`) : null;
    release();
    const dO = baseInputGrad(dev, dy, p.o, { name: `${name}.do` });
    if (g) loraInputGrad(dev, g, ad!, dO);
    return dO;
  }

  /**
   * Forward. With `kept` (selective recomputation: the output and statistics of an earlier
   * forward at the same input), the attention kernel is skipped and `kept` is taken over into
   * the saved record.
   */
  forward(x: Tensor, kept?: AttentionKept): Forward<AttentionSaved> {
    const { dev, p, cfg, name } = this;
    const lora: LoraKept<AttentionProjection> = {};
    const q0 = this.project(x, "q", p.qBias, `${name}.q`, lora);
    const q = this.#rope(q0, cfg.heads, false, `${name}.q_rot`);
    q0.dispose();
    // k and v in one pass over x (without biases, Parameter bases)
    let k0: Tensor, v: Tensor;
    if (p.kBias || p.vBias || !(p.k instanceof Parameter && p.v instanceof Parameter)) {
      k0 = this.project(x, "k", p.kBias, `${name}.k`, lora);
      v = this.project(x, "v", p.vBias, `${name}.v`, lora);
    } else {
      [k0, v] = linearForwardPair(dev, x, p.k.value, p.v.value, {
        names: [`${name}.k`, `${name}.v`],
      });
      this.adapt(x, "k", k0, lora);
      this.adapt(x, "v", v, lora);
    }
    const k = this.#rope(k0, cfg.kvHeads, false, `${name}.k_rot`);
    k0.dispose();
    if (this.sp > 1) return this.#forwardSP(x, q, k, v, lora, kept);
    const { out: o, lse } = kept
      ? { out: kept.o, lse: kept.lse }
      : attentionForward(dev, q, k, v, this.opts);
    const out = this.project(o, "o", undefined, `${name}.out`, lora);
    return { out, saved: { x: view(x), q, k, v, o, lse, ...this.loraField(lora) } };
  }

  /** Ulysses: exchange q/k/v to head shards, attend over all S rows, exchange the output back. */
  #forwardSP(
    x: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    lora: LoraKept<AttentionProjection>,
    kept?: AttentionKept,
  ): Forward<AttentionSaved> {
    const { dev, cfg, name, sp } = this;
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
    const out = this.project(oLocal, "o", undefined, `${name}.out`, lora);
    return {
      out,
      saved: { x: view(x), q: qg, k: kg, v: vg, o: og, lse, oLocal, ...this.loraField(lora) },
    };
  }

  backward(dy: Tensor, s: AttentionSaved): Tensor {
    const { dev, p, cfg, name } = this;
    let dO = this.outputBackward(dy, s.oLocal ?? s.o, s.lora?.o, () => s.oLocal?.dispose());
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
      [dq0, p.q, p.qBias, p.lora?.q, s.lora?.q],
      [dk0, p.k, p.kBias, p.lora?.k, s.lora?.k],
      [dv, p.v, p.vBias, p.lora?.v, s.lora?.v],
    ], name);
  }
}
