/**
 * AdamW with PyTorch's memory behaviour, for the Hugging Face profile (`framework: "hf"`):
 * the same update as {@link AdamW} (our kernel), plus the temporaries `torch.optim` allocates.
 *
 * - A full step (`optimizer.step()` then `zero_grad()`) is `_multi_tensor_adamw` (foreach, the
 *   default on CUDA): `torch._foreach_sqrt(exp_avg_sqs)` makes a copy of every second moment
 *   while every gradient is still live (`zero_grad` comes after the step). At Llama3-8B in bf16
 *   that is weights + gradients + two moments + the copy = 5 × 15 GiB, the 74.8 GiB the MsT
 *   reference notebook reports at S = 8192.
 * - Optimizer-in-backward is the reference's per-parameter `Adam([p], foreach=False)` hooks
 *   (`_single_tensor_adam`): `exp_avg_sq.sqrt() / bias_correction2_sqrt` makes two
 *   temporaries of the parameter's size per update. As in mini-s `benchmark_minis.py`, the
 *   untied `lm_head.weight` is stepped only after the embedding's gradient (`later` /
 *   `recall`), so its gradient lives through the whole backward.
 *
 * Sources: `lib/profiles/hf/extras.ts` (`adamw_foreach`, `adam_single`).
 */

import type { Tensor } from "../../device/tensor.ts";
import type { Parameter } from "../../nn/parameter.ts";
import { hfExtra } from "./extras.ts";
import { AdamW } from "../../optim/adamw.ts";

/** The head weight the reference steps last, and the parameter that releases it. */
const LATER = "lm_head.weight";
const RECALL = "model.embed_tokens.weight";

/** {@link AdamW} with `torch.optim`'s temporaries. */
export class TorchAdamW extends AdamW {
  #inStep = false;
  #later: { p: Parameter; t: number; clip?: Parameters<AdamW["update"]>[2] } | null = null;

  /** One parameter's update; in backward (optimizer-in-backward) with `_single_tensor_adam`'s temporaries. */
  override update(p: Parameter, t: number, clip?: Parameters<AdamW["update"]>[2]): void {
    if (this.#inStep) return super.update(p, t, clip);
    if (p.name === LATER && p.grad) {
      this.#later = { p, t, clip };
      return;
    }
    this.#single(p, t, clip);
    if (p.name === RECALL && this.#later) {
      const l = this.#later;
      this.#later = null;
      this.#single(l.p, l.t, l.clip);
    }
  }

  #single(p: Parameter, t: number, clip?: Parameters<AdamW["update"]>[2]): void {
    if (!p.grad) return;
    const temps = [0, 1].map(() =>
      hfExtra(this.dev, p.name, "adam_single", p.shape, { tag: "workspace" })
    );
    super.update(p, t, clip);
    temps.forEach((x) => x.dispose());
  }

  /** `optimizer.step()` (foreach) then `zero_grad()`: the second moments' square roots live across the step. */
  override stepAll(params: readonly Parameter[]): void {
    const withGrad = params.filter((p) => p.grad);
    // _init_group creates the moments of every parameter before the foreach math
    for (const p of withGrad) {
      p.m ??= this.dev.zeros(p.shape, { tag: "optimizer", name: `${p.name}.exp_avg` });
      p.v ??= this.dev.zeros(p.shape, { tag: "optimizer", name: `${p.name}.exp_avg_sq` });
    }
    const sqrt: Tensor[] = withGrad.map((p) =>
      hfExtra(this.dev, p.name, "adamw_foreach", p.shape, { tag: "workspace" })
    );
    this.#inStep = true;
    try {
      super.stepAll(params);
    } finally {
      this.#inStep = false;
      sqrt.forEach((x) => x.dispose());
    }
  }
}
