/**
 * The mini-sequence LM-head loss: never materializes the (S, V) logits.
 *
 * Forward runs the head and the cross-entropy chunk by chunk and keeps only the input rows
 * and the targets; backward recomputes each chunk's logits, turns them into logit gradients
 * in place (softmax − one-hot, soft-cap derivative, ignored rows zeroed, scaled by 1/N with N
 * the *global* number of valid targets), then accumulates dW += gᵀ·y_i and writes dy_i.
 * The largest `logits` allocation is ⌈S/M⌉·V elements.
 *
 * When the training step passes the gradient scale to `forward` (it is known before forward:
 * the loss is the last op), each chunk's logit gradients are formed right after its loss, as
 * Liger's fused linear cross-entropy does: dW and dy are accumulated in forward and backward
 * only hands dy over. This keeps the same bytes between forward and backward (dy instead of
 * y, both (S, d)) and saves recomputing every chunk's logits. Without the scale (evaluation,
 * or `fuseBackward: false`) forward keeps y and backward recomputes, as the paper's code does. Unlike the reference code, the weight
 * gradient is accumulated once (1×), every target counts when S mod M ≠ 0 or S < M, the
 * final-logit soft-cap is applied inside the chunks, and tied embeddings receive the sum of
 * both gradients (the head and the embedding share one `Parameter`).
 *
 * With one chunk (M = 1) the chunk is a view of y and the targets, and its losses and dy are
 * the whole ones, so M = 1 costs no more than the plain head (`LMHeadLoss`). With M > 1 each
 * chunk's rows are copied, (n, d) and (n): a kernel binds a tensor whole, and a view of a row
 * range would need offset bindings (aligned to the device's `minStorageBufferOffsetAlignment`)
 * in the device layer. The copy is d/V of the chunk's logits.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { type HeadLoss } from "../nn/lm_head_loss.ts";
import { view } from "../nn/layer.ts";
import type { Parameter } from "../nn/parameter.ts";
import {
  crossEntropyBackward,
  crossEntropyFused,
  crossEntropyLosses,
} from "../ops/cross_entropy.ts";
import { linearBackwardInput, linearBackwardWeight, linearForward } from "../ops/linear.ts";
import { sum } from "../ops/reduce.ts";
import { type AutoChunkInput, chunkRanges, type Chunks, resolveChunks } from "./chunking.ts";

/** Saved state: the head input, the targets and the M used. */
export interface MiniSequenceHeadSaved {
  /** The head input (S, d), a view, when backward recomputes; null when fused. */
  y: Tensor | null;
  /** The targets, (S) i32, a view, when backward recomputes; null when fused. */
  targets: Tensor | null;
  /** dy (S, d) already formed in forward (fused); null when backward recomputes. */
  dy: Tensor | null;
  /** The gradient scale forward used (NaN when not fused). */
  gradScale: number;
  /** Number of mini-sequences used in forward. */
  M: number;
}

/** The `"auto"` rule's inputs for S rows of a (V, d) head. */
export type HeadSizing = (dev: Device, S: number, V: number, d: number) => AutoChunkInput;

/** Chunked linear head + cross-entropy. */
export class MiniSequenceHeadLoss implements HeadLoss<MiniSequenceHeadSaved> {
  /** M used by the last forward. */
  lastChunks = 0;
  /**
   * A chunked head over `weight`.
   * @param dev The device.
   * @param name Name for reports (tensor names are prefixed with it).
   * @param weight Head weight (V, d), possibly tied to the embedding.
   * @param finalSoftcap Soft-cap of the final logits (Gemma-2), passed to the cross-entropy.
   * @param chunks M, or `"auto"`.
   */
  constructor(
    readonly dev: Device,
    readonly name: string,
    readonly weight: Parameter, // (V, d)
    readonly finalSoftcap: number,
    readonly chunks: Chunks,
    /** Form the gradients in forward when the scale is known (default true). */
    readonly fuseBackward = true,
    /**
     * The `"auto"` rule's inputs for S rows (the MsT head technique's sizing,
     * `lib/techniques/mst_head.ts`); needed only when `chunks` is `"auto"`.
     */
    readonly sizing?: HeadSizing,
  ) {}

  /** The M this head runs for S rows (after `"auto"` and the cap at S). */
  chunksFor(S: number): number {
    return this.#m(S);
  }

  #m(S: number): number {
    const [V, d] = this.weight.shape;
    if (this.chunks !== "auto") return resolveChunks(this.dev, this.chunks, this.#fixed(S, V));
    if (!this.sizing) {
      throw new Error(
        `${this.name}: chunks "auto" needs a sizing rule (pass the MsT head technique's ` +
          "headChunking), or give M",
      );
    }
    return resolveChunks(this.dev, "auto", this.sizing(this.dev, S, V, d));
  }

  /** The rule's inputs for a fixed M, which reads only S. */
  #fixed(S: number, V: number): AutoChunkInput {
    return { S, shapeRule: 1, widestRow: V, bytesPerRow: 1 };
  }

  /**
   * Rows r0..r1 of y (n, d) and of the targets (n). A chunk covering every row (M = 1) is a
   * view of y and the targets themselves — no copy, so M = 1 costs no more than the plain
   * head; a part of the rows is copied (a tensor is bound to a kernel whole).
   */
  #chunk(y: Tensor, targets: Tensor, r0: number, r1: number): { yi: Tensor; ti: Tensor } {
    const dev = this.dev;
    const [S, d] = y.shape;
    if (r0 === 0 && r1 === S) return { yi: view(y), ti: view(targets) };
    const n = r1 - r0;
    const yi = dev.tensor([n, d], { tag: "activations", name: `${this.name}.y_chunk` }); // (n, d)
    dev.copy(y, r0 * d, yi, 0, n * d);
    const ti = dev.tensor([n], { tag: "data", dtype: "i32", name: `${this.name}.targets_chunk` });
    dev.copy(targets, r0, ti, 0, n);
    return { yi, ti };
  }

  forward(
    y: Tensor,
    targets: Tensor,
    gradScale?: number,
  ): { lossSum: Tensor; saved: MiniSequenceHeadSaved } {
    const dev = this.dev;
    const [S, d] = y.shape;
    const M = this.#m(S);
    this.lastChunks = M;
    const fused = this.fuseBackward && gradScale !== undefined;
    const ranges = chunkRanges(S, M);
    const whole = ranges.length === 1;
    // one chunk: its losses and dy are the whole ones (no (S) and (S, d) buffers to copy into)
    const losses = whole
      ? null
      : dev.tensor([S], { tag: "activations", name: `${this.name}.losses`, dtype: "f32" }); // (S) f32
    let lossSum: Tensor | null = null;
    let dy = fused && !whole
      ? dev.tensor([S, d], { tag: "activations", name: `${this.name}.dy` }) // (S, d)
      : null;
    for (const [r0, r1] of ranges) {
      const { yi, ti } = this.#chunk(y, targets, r0, r1);
      const logits = linearForward(dev, yi, this.weight.value, undefined, {
        tag: "logits",
        name: `${this.name}.logits_chunk`,
      }); // (n, V)
      // Fused: the losses and the logit gradients (in place) in one pass over the chunk.
      const li = fused
        ? crossEntropyFused(dev, logits, ti, { gradScale: gradScale!, softcap: this.finalSoftcap })
        : crossEntropyLosses(dev, logits, ti, { softcap: this.finalSoftcap }); // (n)
      if (losses) dev.copy(li, 0, losses, r0, r1 - r0);
      else lossSum = sum(dev, li); // (1), before the gradients, as the plain head does
      li.dispose();
      if (fused) {
        ti.dispose(); // the targets are not needed past here: free them before the two matmuls
        const dyi = this.#weightAndInputGradients(logits, yi, whole); // (n, d); logits hold g
        if (dy) {
          dev.copy(dyi, 0, dy, r0 * d, (r1 - r0) * d);
          dyi.dispose();
        } else dy = dyi;
      }
      for (const t of [yi, ti, logits]) t.dispose();
    }
    if (losses) {
      lossSum = sum(dev, losses);
      losses.dispose();
    }
    const saved: MiniSequenceHeadSaved = dy
      ? { y: null, targets: null, dy, gradScale: gradScale!, M }
      : { y: view(y), targets: view(targets), dy: null, gradScale: NaN, M };
    return { lossSum: lossSum!, saved };
  }

  /** g = ∂loss/∂logits in place; dW += gᵀ·y_i; returns dy_i = g·W (n, d). Disposes `ti`. */
  #chunkGradients(
    logits: Tensor,
    ti: Tensor,
    yi: Tensor,
    gradScale: number,
    whole: boolean,
  ): Tensor {
    const dev = this.dev;
    const g = crossEntropyBackward(dev, logits, ti, {
      gradScale,
      softcap: this.finalSoftcap,
      inPlace: true,
    }); // (n, V), the logits' storage
    ti.dispose(); // the targets are not needed past here: free them before the two matmuls
    return this.#weightAndInputGradients(g, yi, whole);
  }

  /** From the logit gradients g (n, V): dW += gᵀ·y_i; returns dy_i = g·W (n, d); frees g. */
  #weightAndInputGradients(g: Tensor, yi: Tensor, whole: boolean): Tensor {
    const dev = this.dev;
    if (!this.weight.frozen) linearBackwardWeight(dev, g, yi, this.weight.gradFor(dev));
    const dyi = linearBackwardInput(dev, g, this.weight.value, {
      name: whole ? `${this.name}.dy` : `${this.name}.dy_chunk`,
    });
    g.dispose();
    return dyi;
  }

  backward(s: MiniSequenceHeadSaved, gradScale: number): Tensor {
    if (s.dy) {
      if (gradScale !== s.gradScale) {
        throw new Error(
          `${this.name}: backward scale ${gradScale} differs from the ${s.gradScale} its forward used`,
        );
      }
      return s.dy;
    }
    const dev = this.dev;
    const y = s.y!;
    const targets = s.targets!;
    const [S, d] = y.shape;
    const ranges = chunkRanges(S, s.M);
    let dy = ranges.length === 1
      ? null
      : dev.tensor([S, d], { tag: "activations", name: `${this.name}.dy` }); // (S, d)
    for (const [r0, r1] of ranges) {
      const { yi, ti } = this.#chunk(y, targets, r0, r1);
      // the last chunk's targets (ti) are the last use: drop the saved ones now
      if (r1 === S) targets.dispose();
      const logits = linearForward(dev, yi, this.weight.value, undefined, {
        tag: "logits",
        name: `${this.name}.logits_chunk`,
      }); // (n, V)
      const dyi = this.#chunkGradients(logits, ti, yi, gradScale, !dy); // (n, d)
      if (dy) {
        dev.copy(dyi, 0, dy, r0 * d, (r1 - r0) * d);
        dyi.dispose();
      } else dy = dyi;
      for (const t of [yi, ti, logits]) t.dispose();
    }
    y.dispose();
    return dy!;
  }
}
