/**
 * The mini-sequence LM-head loss: never materializes the (S, V) logits.
 *
 * Forward runs the head and the cross-entropy chunk by chunk and keeps only the input rows
 * and the targets; backward recomputes each chunk's logits, turns them into logit gradients
 * in place (softmax − one-hot, soft-cap derivative, ignored rows zeroed, scaled by 1/N with N
 * the *global* number of valid targets), then accumulates dW += gᵀ·y_i and writes dy_i.
 * The largest `logits` allocation is ⌈S/M⌉·V elements. Unlike the reference code, the weight
 * gradient is accumulated once (1×), every target counts when S mod M ≠ 0 or S < M, the
 * final-logit soft-cap is applied inside the chunks, and tied embeddings receive the sum of
 * both gradients (the head and the embedding share one `Parameter`).
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { type HeadLoss } from "../nn/lm_head_loss.ts";
import { view } from "../nn/layer.ts";
import type { Parameter } from "../nn/parameter.ts";
import { crossEntropyBackward, crossEntropyLosses } from "../ops/cross_entropy.ts";
import { linearBackwardInput, linearBackwardWeight, linearForward } from "../ops/linear.ts";
import { sum } from "../ops/reduce.ts";
import { chunkRanges, type Chunks, resolveChunks } from "./chunking.ts";

/** Saved state: the head input, the targets and the M used. */
export interface MiniSequenceHeadSaved {
  /** The head input (S, d): a view of it. */
  y: Tensor;
  /** The targets, (S) i32: a view of them. */
  targets: Tensor;
  /** Number of mini-sequences used in forward. */
  M: number;
}

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
  ) {}

  #m(S: number): number {
    const [V, d] = this.weight.shape;
    const elem = this.dev.floats === "f32" ? 4 : 2;
    return resolveChunks(this.dev, this.chunks, {
      S,
      shapeRule: Math.ceil(V / d),
      widestRow: V,
      bytesPerRow: (V + 2 * d + 2) * elem,
    });
  }

  #chunk(y: Tensor, targets: Tensor, r0: number, r1: number): { yi: Tensor; ti: Tensor } {
    const dev = this.dev;
    const d = y.shape[1];
    const n = r1 - r0;
    const yi = dev.tensor([n, d], { tag: "activations", name: `${this.name}.y_chunk` }); // (n, d)
    dev.copy(y, r0 * d, yi, 0, n * d);
    const ti = dev.tensor([n], { tag: "data", dtype: "i32", name: `${this.name}.targets_chunk` });
    dev.copy(targets, r0, ti, 0, n);
    return { yi, ti };
  }

  forward(y: Tensor, targets: Tensor): { lossSum: Tensor; saved: MiniSequenceHeadSaved } {
    const dev = this.dev;
    const S = y.shape[0];
    const M = this.#m(S);
    this.lastChunks = M;
    const losses = dev.tensor([S], { tag: "activations", name: `${this.name}.losses` }); // (S)
    for (const [r0, r1] of chunkRanges(S, M)) {
      const { yi, ti } = this.#chunk(y, targets, r0, r1);
      const logits = linearForward(dev, yi, this.weight.value, undefined, {
        tag: "logits",
        name: `${this.name}.logits_chunk`,
      }); // (n, V)
      const li = crossEntropyLosses(dev, logits, ti, { softcap: this.finalSoftcap }); // (n)
      dev.copy(li, 0, losses, r0, r1 - r0);
      for (const t of [yi, ti, logits, li]) t.dispose();
    }
    const lossSum = sum(dev, losses);
    losses.dispose();
    return { lossSum, saved: { y: view(y), targets: view(targets), M } };
  }

  backward(s: MiniSequenceHeadSaved, gradScale: number): Tensor {
    const dev = this.dev;
    const [S, d] = s.y.shape;
    const dy = dev.tensor([S, d], { tag: "activations", name: `${this.name}.dy` }); // (S, d)
    for (const [r0, r1] of chunkRanges(S, s.M)) {
      const { yi, ti } = this.#chunk(s.y, s.targets, r0, r1);
      const logits = linearForward(dev, yi, this.weight.value, undefined, {
        tag: "logits",
        name: `${this.name}.logits_chunk`,
      }); // (n, V)
      const g = crossEntropyBackward(dev, logits, ti, {
        gradScale,
        softcap: this.finalSoftcap,
        inPlace: true,
      }); // (n, V), the logits' storage
      linearBackwardWeight(dev, g, yi, this.weight.gradFor(dev));
      const dyi = linearBackwardInput(dev, g, this.weight.value, { name: `${this.name}.dy_chunk` });
      dev.copy(dyi, 0, dy, r0 * d, (r1 - r0) * d);
      for (const t of [yi, ti, logits, g, dyi]) t.dispose();
    }
    s.y.dispose();
    s.targets.dispose();
    return dy;
  }
}
