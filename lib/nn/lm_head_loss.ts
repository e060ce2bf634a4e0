/**
 * The LM head and the cross-entropy loss: logits = y·Wᵀ (optional final soft-cap), summed
 * cross-entropy over targets ≠ −100. The caller divides by the number of valid targets
 * (passed to backward as `gradScale` = 1/N), so a batch with no valid target has loss 0 and
 * no gradient instead of NaN.
 *
 * This is the standard (unchunked) head: it materializes the (S, V) logits and keeps them
 * for backward, then allocates (S, V) logit gradients — the memory MsT removes
 * (`lib/mst/mini_sequence_head.ts`).
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { crossEntropyBackward, crossEntropyLosses } from "../ops/cross_entropy.ts";
import { linearBackwardInput, linearBackwardWeight, linearForward } from "../ops/linear.ts";
import { sum } from "../ops/reduce.ts";
import { view } from "./layer.ts";
import type { Parameter } from "./parameter.ts";

/** A loss head: forward gives Σ losses; backward gives dy for a given 1/N. */
export interface HeadLoss<S = unknown> {
  /** Name for reports. */
  readonly name: string;
  /**
   * y (S, d), targets i32 (S) → the summed loss (1). `gradScale` (1/N), when given, is the
   * scale backward will use: a head may then compute its gradients already in forward (the
   * loss is the last op, so its upstream gradient is known); omitted for evaluation.
   */
  forward(y: Tensor, targets: Tensor, gradScale?: number): { lossSum: Tensor; saved: S };
  /** Frees `saved`, accumulates the head weight gradient, returns dy (S, d). */
  backward(saved: S, gradScale: number): Tensor;
}

/** Kept by the standard head: input, targets and the full logits. */
export interface StandardHeadSaved {
  y: Tensor; // (S, d)
  targets: Tensor; // (S) i32
  logits: Tensor; // (S, V)
}

/** Linear head + cross-entropy, unchunked. */
export class LMHeadLoss implements HeadLoss<StandardHeadSaved> {
  constructor(
    readonly dev: Device,
    readonly name: string,
    readonly weight: Parameter, // (V, d), tied to the embedding or not
    readonly finalSoftcap: number,
  ) {}

  forward(y: Tensor, targets: Tensor): { lossSum: Tensor; saved: StandardHeadSaved } {
    const dev = this.dev;
    const logits = linearForward(dev, y, this.weight.value, undefined, {
      tag: "logits",
      name: `${this.name}.logits`,
    }); // (S, V)
    const losses = crossEntropyLosses(dev, logits, targets, { softcap: this.finalSoftcap }); // (S)
    const lossSum = sum(dev, losses); // (1)
    losses.dispose();
    return { lossSum, saved: { y: view(y), targets: view(targets), logits } };
  }

  backward(s: StandardHeadSaved, gradScale: number): Tensor {
    const dev = this.dev;
    const dlogits = crossEntropyBackward(dev, s.logits, s.targets, {
      gradScale,
      softcap: this.finalSoftcap,
      tag: "logits",
      name: `${this.name}.dlogits`,
    }); // (S, V)
    s.logits.dispose();
    s.targets.dispose();
    if (!this.weight.frozen) linearBackwardWeight(dev, dlogits, s.y, this.weight.gradFor(dev));
    const dy = linearBackwardInput(dev, dlogits, this.weight.value, { name: `${this.name}.dy` });
    dlogits.dispose();
    s.y.dispose();
    return dy;
  }
}
