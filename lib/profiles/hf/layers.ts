/**
 * The layers of the Hugging Face profile (`framework: "hf"`): our layers, with the extra
 * buffers transformers + PyTorch allocate beside them (`lib/profiles/hf/extras.ts` names each
 * one and its source). The math is ours — the same kernels, the same loss and gradients — so
 * the profile runs on every device; on the meta device it makes a plan count what a
 * transformers run holds.
 *
 * - {@link HFRMSNorm}: LlamaRMSNorm's fp32 upcast and bf16 normalized copy saved for
 *   backward, and its fp32 transients.
 * - {@link HFSelfAttention}: RoPE temporaries, FlashAttention-2's fp32 log-sum-exp and its
 *   backward workspaces.
 * - {@link HFMLP}: LlamaMLP's saved SiLU output and the gradient of the product.
 * - {@link HFMiniSequence}: mini-s's MLP chunks, which save every chunk's intermediates.
 * - {@link HFMiniSequenceHeadLoss}: mini-s's chunked head (contiguous hidden copies saved,
 *   fp32 logits per chunk, recomputed in backward).
 */

import type { Tensor } from "../../device/tensor.ts";
import { MiniSequence, type MiniSequenceSaved } from "../../mst/mini_sequence.ts";
import {
  type HeadSizing,
  MiniSequenceHeadLoss,
  type MiniSequenceHeadSaved,
} from "../../mst/mini_sequence_head.ts";
import { attentionBackward, attentionForward } from "../../ops/attention.ts";
import { rope } from "../../ops/rope.ts";
import { hfExtra, hfTransients, upcastExcessElements } from "./extras.ts";
import type { Forward } from "../../nn/layer.ts";
import { view } from "../../nn/layer.ts";
import { MLP, type MLPSaved } from "../../nn/mlp.ts";
import { disposeAll, type Parameter } from "../../nn/parameter.ts";
import { RMSNorm, type RMSNormSaved } from "../../nn/rmsnorm.ts";
import {
  type AttentionProjection,
  type AttentionSaved,
  type LoraKept,
  qkvProjectionBackward,
  SelfAttention,
} from "../../nn/self_attention.ts";

/** Extra tensors kept from forward to backward, beside a layer's own saved record. */
export interface HFExtrasSaved {
  /** The extra buffers (freed by the layer's backward). */
  hf: Tensor[];
}

function disposeExtras(s: HFExtrasSaved): void {
  for (const t of s.hf) t.dispose();
}

/**
 * LlamaRMSNorm: `x.to(float32)` and `x.to(input_dtype)` saved, with the fp32 products in
 * forward and backward.
 */
export class HFRMSNorm extends RMSNorm {
  #extras(S: number, d: number): Tensor[] {
    const dev = this.dev;
    const kept: Tensor[] = [];
    const excess = upcastExcessElements(dev.floats, S * d);
    if (excess > 0) kept.push(hfExtra(dev, this.name, "rmsnorm_upcast", [excess]));
    // pow(2) and x·rsqrt: fp32 (S, d), one after the other, before the bf16 copy
    const done = hfTransients(dev, this.name, [{
      kind: "rmsnorm_temp",
      shape: [S, d],
      fp32: true,
    }]);
    kept.push(hfExtra(dev, this.name, "rmsnorm_normed", [S, d]));
    done();
    return kept;
  }

  override forward(x: Tensor): Forward<RMSNormSaved & HFExtrasSaved> {
    const hf = this.#extras(x.shape[0], x.shape[1]);
    const f = super.forward(x);
    return { out: f.out, saved: { ...f.saved, hf } };
  }

  override forwardAdd(
    a: Tensor,
    b: Tensor,
    sumName: string,
  ): Forward<RMSNormSaved & HFExtrasSaved> & { sum: Tensor } {
    const hf = this.#extras(a.shape[0], a.shape[1]);
    const f = super.forwardAdd(a, b, sumName);
    return { out: f.out, sum: f.sum, saved: { ...f.saved, hf } };
  }

  override backward(dy: Tensor, s: RMSNormSaved & HFExtrasSaved, residual?: Tensor): Tensor {
    const [S, d] = dy.shape;
    // ToCopyBackward's fp32 gradient, MulBackward0's g·rsqrt and (g·x).sum operand,
    // PowBackward0's 2·x·g: fp32 (S, d), three live at once
    const done = hfTransients(this.dev, this.name, [
      { kind: "rmsnorm_temp", shape: [S, d], fp32: true },
      { kind: "rmsnorm_temp", shape: [S, d], fp32: true },
      { kind: "rmsnorm_temp", shape: [S, d], fp32: true },
    ]);
    const dx = super.backward(dy, s, residual);
    done();
    disposeExtras(s);
    return dx;
  }
}

/**
 * LlamaFlashAttention2 (transformers 4.42–4.44): projections, `apply_rotary_pos_emb`,
 * `flash_attn_func`, `o_proj`. Same saved record as ours (FlashAttnFunc saves q, k, v after
 * RoPE, out and softmax_lse), plus the fp32 excess of the log-sum-exp; RoPE and FA2 backward
 * transients.
 */
export class HFSelfAttention extends SelfAttention {
  #rope(x: Tensor, heads: number, inverse: boolean, name: string): Tensor {
    const c = this.cfg;
    return rope(this.dev, x, { heads, headDim: c.headDim, theta: c.ropeTheta, inverse, name });
  }

  /** q·cos, rotate_half(q) and rotate_half(q)·sin beside q before the sum (RoPE). */
  #ropeTemps(S: number, width: number): () => void {
    return hfTransients(this.dev, this.name, [
      { kind: "rope_temp", shape: [S, width] },
      { kind: "rope_temp", shape: [S, width] },
    ]);
  }

  override forward(x: Tensor): Forward<AttentionSaved & HFExtrasSaved> {
    const { dev, p, cfg, name } = this;
    const S = x.shape[0];
    const hd = cfg.headDim;
    const lora: LoraKept<AttentionProjection> = {};
    const q0 = this.project(x, "q", p.qBias, `${name}.q`, lora);
    let done = this.#ropeTemps(S, cfg.heads * hd);
    const q = this.#rope(q0, cfg.heads, false, `${name}.q_rot`);
    done();
    q0.dispose();
    const k0 = this.project(x, "k", p.kBias, `${name}.k`, lora);
    done = this.#ropeTemps(S, cfg.kvHeads * hd);
    const k = this.#rope(k0, cfg.kvHeads, false, `${name}.k_rot`);
    done();
    k0.dispose();
    const v = this.project(x, "v", p.vBias, `${name}.v`, lora);
    const { out: o, lse } = attentionForward(dev, q, k, v, this.opts);
    const hf: Tensor[] = [];
    const excess = upcastExcessElements(dev.floats, cfg.heads * S);
    if (excess > 0) hf.push(hfExtra(dev, name, "fa2_lse", [excess]));
    const out = this.project(o, "o", undefined, `${name}.out`, lora);
    return { out, saved: { x: view(x), q, k, v, o, lse, ...this.loraField(lora), hf } };
  }

  override backward(dy: Tensor, s: AttentionSaved & HFExtrasSaved): Tensor {
    const { dev, p, cfg, name } = this;
    const S = dy.shape[0];
    const H = cfg.heads;
    const wide = H * cfg.headDim;
    const dO = this.outputBackward(dy, s.o, s.lora?.o, () => {});
    // mha_bwd: dq_accum (S, H·hd) fp32, softmax_d (H, S) fp32, and under GQA the expanded
    // dk, dv (S, H·hd) before the sum over each group of heads
    const fa = hfTransients(dev, name, [
      { kind: "fa2_backward", shape: [S, wide], fp32: true },
      { kind: "fa2_backward", shape: [H, S], fp32: true },
      ...(cfg.kvHeads < H
        ? [{ kind: "fa2_backward" as const, shape: [S, wide] }, {
          kind: "fa2_backward" as const,
          shape: [S, wide],
        }]
        : []),
    ]);
    const { dq, dk, dv } = attentionBackward(dev, dO, s.q, s.k, s.v, s.o, s.lse, this.opts);
    fa();
    dO.dispose();
    for (const t of [s.q, s.k, s.v, s.o, s.lse]) t.dispose();
    disposeExtras(s);
    let done = this.#ropeTemps(S, wide);
    const dq0 = this.#rope(dq, H, true, `${name}.dq`);
    done();
    dq.dispose();
    done = this.#ropeTemps(S, cfg.kvHeads * cfg.headDim);
    const dk0 = this.#rope(dk, cfg.kvHeads, true, `${name}.dk`);
    done();
    dk.dispose();
    return qkvProjectionBackward(dev, s.x, [
      [dq0, p.q, p.qBias, p.lora?.q, s.lora?.q],
      [dk0, p.k, p.kBias, p.lora?.k, s.lora?.k],
      [dv, p.v, p.vBias, p.lora?.v, s.lora?.v],
    ], name);
  }
}

/** LlamaMLP: the SiLU output saved by the product, and the product's gradient in backward. */
export class HFMLP extends MLP {
  #act(x: Tensor): Tensor {
    return hfExtra(this.dev, this.name, "mlp_act", [x.shape[0], this.gate.shape[0]]); // (S, I)
  }

  /**
   * PyTorch's forward of a recomputed MLP (no grad) still materialises gate, act and up: the
   * profile keeps our full forward rather than {@link MLP.forwardOut}'s h-only pass.
   */
  override forwardOut(x: Tensor): Tensor {
    const f = this.forward(x);
    disposeAll(f.saved);
    return f.out;
  }

  /** Also under `forward`, which takes its saved record from here. */
  override recompute(x: Tensor): MLPSaved & HFExtrasSaved {
    const s = super.recompute(x);
    return { ...s, hf: [this.#act(x)] };
  }

  override backward(dy: Tensor, s: MLPSaved & HFExtrasSaved): Tensor {
    // d(act·up) from down_proj's backward, then d(act) and d(up) beside it (S, I)
    const done = hfTransients(this.dev, this.name, [
      { kind: "mlp_grad_temp", shape: [dy.shape[0], this.gate.shape[0]] },
    ]);
    const dx = super.backward(dy, s);
    done();
    disposeExtras(s);
    return dx;
  }
}

/**
 * mini-s's `LlamaMLPWarpper`: the MLP on chunks of the rows, concatenated. Under autograd every
 * chunk saves its intermediates (gate, SiLU output, up, product: 4 × (n, I)) until its
 * backward — when the layer is recomputed by `torch.utils.checkpoint`, all chunks at once.
 * Ours recomputes one chunk at a time in backward, which stands for one chunk's share; the
 * extra is the other chunks', 4 × (S − n, I).
 */
export class HFMiniSequence<S> extends MiniSequence<S> {
  #saved(x: Tensor): Tensor[] {
    const S = x.shape[0];
    const n = Math.ceil(S / Math.max(this.lastChunks, 1));
    const rows = S - n;
    if (rows <= 0) return [];
    return [hfExtra(this.dev, this.inner.name, "mst_mlp_saved", [rows, 4 * this.opts.widestRow])];
  }

  override forward(x: Tensor): Forward<MiniSequenceSaved & HFExtrasSaved> {
    const f = super.forward(x);
    return { out: f.out, saved: { ...f.saved, hf: this.#saved(x) } };
  }

  override recompute(x: Tensor): MiniSequenceSaved & HFExtrasSaved {
    const s = super.recompute(x);
    return { ...s, hf: this.#saved(x) };
  }

  override backward(dy: Tensor, s: MiniSequenceSaved & HFExtrasSaved): Tensor {
    const dx = super.backward(dy, s);
    disposeExtras(s);
    return dx;
  }
}

/**
 * mini-s's `LlamaForCausalLMWarpper.minis_processing` + `_LM_head`: per chunk a contiguous copy
 * of the hidden rows is saved (all chunks: (S, d)); forward upcasts each chunk's logits to fp32
 * and runs CrossEntropyLoss (log_softmax fp32); backward recomputes the chunk's logits in fp32,
 * takes `F.softmax` (fp32) and casts the gradient to bf16. Runs our chunked head unfused (the
 * reference recomputes in backward).
 */
export class HFMiniSequenceHeadLoss extends MiniSequenceHeadLoss {
  constructor(
    dev: MiniSequenceHeadLoss["dev"],
    name: string,
    weight: Parameter,
    finalSoftcap: number,
    chunks: MiniSequenceHeadLoss["chunks"],
    sizing?: HeadSizing,
  ) {
    super(dev, name, weight, finalSoftcap, chunks, false, sizing);
  }

  #rows(S: number): number {
    return Math.ceil(S / this.chunksFor(S));
  }

  override forward(
    y: Tensor,
    targets: Tensor,
    gradScale?: number,
  ): { lossSum: Tensor; saved: MiniSequenceHeadSaved & HFExtrasSaved } {
    const [S, d] = y.shape;
    const V = this.weight.shape[0];
    const n = this.#rows(S);
    const hidden = hfExtra(this.dev, this.name, "mst_head_hidden", [S, d]);
    const done = hfTransients(this.dev, this.name, [
      { kind: "mst_head_fp32", shape: [n, V], fp32: true }, // logits.float()
      { kind: "mst_head_fp32", shape: [n, V], fp32: true }, // log_softmax
    ], "logits");
    const f = super.forward(y, targets, gradScale);
    done();
    return { lossSum: f.lossSum, saved: { ...f.saved, hf: [hidden] } };
  }

  override backward(s: MiniSequenceHeadSaved & HFExtrasSaved, gradScale: number): Tensor {
    const S = s.y?.shape[0] ?? s.dy!.shape[0];
    const V = this.weight.shape[0];
    const n = Math.ceil(S / s.M);
    const done = hfTransients(this.dev, this.name, [
      { kind: "mst_head_fp32", shape: [n, V], fp32: true }, // recomputed logits.float()
      { kind: "mst_head_fp32", shape: [n, V], fp32: true }, // F.softmax
      { kind: "mst_head_fp32", shape: [n, V] }, // grad_input.to(bf16)
    ], "logits");
    const dy = super.backward(s, gradScale);
    done();
    disposeExtras(s);
    return dy;
  }
}
