/**
 * The LM head + loss as Hugging Face transformers' `LlamaForCausalLM` runs it (the
 * "standard implementation" the MsT paper measures), for memory studies.
 *
 * Same math as {@link LMHeadLoss}, but it allocates the buffers transformers does, in the
 * same order: `logits.float()` (an fp32 upcast, kept alive until backward because the model
 * output holds it), the contiguous shifted copy (fp32), `log_softmax`'s saved fp32 output,
 * and in backward the fp32 gradients of the log-probabilities, of the log-softmax input and
 * of the upcast, then the cast back to the model dtype. In a bf16 plan these fp32 buffers are
 * counted at 4 bytes per element (`countAs: "f32"`), so the planner reproduces the
 * reference's ≈14–16 bytes per token per vocabulary entry. On WebGPU the extra buffers are
 * real allocations holding copies; the loss and gradients come from the same kernels as the
 * standard head.
 */

import type { Device } from "../../device/device.ts";
import type { Tensor } from "../../device/tensor.ts";
import { crossEntropyBackward, crossEntropyLosses } from "../../ops/cross_entropy.ts";
import { linearBackwardInput, linearBackwardWeight, linearForward } from "../../ops/linear.ts";
import { sum } from "../../ops/reduce.ts";
import { view } from "../../nn/layer.ts";
import type { HeadLoss } from "../../nn/lm_head_loss.ts";
import type { Parameter } from "../../nn/parameter.ts";
import { HF_MARK } from "./extras.ts";

/** Kept between forward and backward, as in transformers. */
export interface HFHeadSaved {
  y: Tensor; // (S, d)
  targets: Tensor; // (S) i32
  logits32: Tensor; // (S, V) fp32 upcast, held by the model output
  logProbs: Tensor; // (S, V) fp32, saved by log_softmax
}

/** transformers-style head + cross-entropy (memory emulation with exact math). */
export class HFLMHeadLoss implements HeadLoss<HFHeadSaved> {
  constructor(
    readonly dev: Device,
    readonly name: string,
    readonly weight: Parameter, // (V, d)
    readonly finalSoftcap: number,
  ) {}

  #f32(shape: readonly number[], name: string): Tensor {
    // named `…hf:logits` so a plan reports them among the HF profile's extra buffers
    return this.dev.tensor(shape, {
      tag: "logits",
      name: `${this.name}.${name}.${HF_MARK}logits`,
      countAs: "f32",
    });
  }

  forward(y: Tensor, targets: Tensor): { lossSum: Tensor; saved: HFHeadSaved } {
    const dev = this.dev;
    const logits = linearForward(dev, y, this.weight.value, undefined, {
      tag: "logits",
      name: `${this.name}.logits`,
    }); // (S, V) model dtype
    const [S, V] = logits.shape;
    const logits32 = this.#f32([S, V], "logits_fp32"); // logits.float()
    dev.copy(logits, 0, logits32, 0, S * V);
    logits.dispose();
    const shifted = this.#f32([S, V], "shift_logits"); // logits[..., :-1, :].contiguous()
    dev.copy(logits32, 0, shifted, 0, S * V);
    const logProbs = this.#f32([S, V], "log_softmax"); // saved by log_softmax
    dev.copy(shifted, 0, logProbs, 0, S * V);
    const losses = crossEntropyLosses(dev, shifted, targets, { softcap: this.finalSoftcap });
    shifted.dispose();
    const lossSum = sum(dev, losses);
    losses.dispose();
    return { lossSum, saved: { y: view(y), targets: view(targets), logits32, logProbs } };
  }

  backward(s: HFHeadSaved, gradScale: number): Tensor {
    const dev = this.dev;
    const [S, V] = s.logits32.shape;
    const dLogProbs = this.#f32([S, V], "grad_log_probs"); // nll_loss backward
    dev.fill(dLogProbs, 0);
    const dShift = this.#f32([S, V], "grad_shift_logits"); // log_softmax backward
    dev.copy(s.logits32, 0, dShift, 0, S * V);
    crossEntropyBackward(dev, dShift, s.targets, {
      gradScale,
      softcap: this.finalSoftcap,
      inPlace: true,
    });
    dLogProbs.dispose();
    s.logProbs.dispose();
    const dLogits32 = this.#f32([S, V], "grad_logits_fp32"); // slice backward
    dev.copy(dShift, 0, dLogits32, 0, S * V);
    dShift.dispose();
    const dLogits = dev.tensor([S, V], { tag: "logits", name: `${this.name}.grad_logits` }); // cast
    dev.copy(dLogits32, 0, dLogits, 0, S * V);
    dLogits32.dispose();
    s.logits32.dispose();
    s.targets.dispose();
    if (!this.weight.frozen) linearBackwardWeight(dev, dLogits, s.y, this.weight.gradFor(dev));
    const dy = linearBackwardInput(dev, dLogits, this.weight.value, { name: `${this.name}.dy` });
    dLogits.dispose();
    s.y.dispose();
    return dy;
  }
}
