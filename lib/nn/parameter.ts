/**
 * Parameters: a weight tensor, its gradient (allocated at the first contribution and freed
 * after the optimizer uses it, like PyTorch's `zero_grad(set_to_none=True)`), and AdamW
 * state (allocated at the first update).
 *
 * Rule, stated once: parameter gradients accumulate (`+=`), activation gradients overwrite.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";

/** One named parameter. */
export class Parameter {
  /** Accumulated gradient (tag `grads`); null until the first contribution and after use. */
  grad: Tensor | null = null;
  /** AdamW first moment (tag `optimizer`); null until the first update. */
  m: Tensor | null = null;
  /** AdamW second moment (tag `optimizer`); null until the first update. */
  v: Tensor | null = null;
  /**
   * Mixed precision: the f32 master weight (tag `optimizer`) that AdamW updates; `value` is
   * then its f16 working copy, rewritten by every update. Null in f32 training.
   */
  master: Tensor | null = null;

  /**
   * A named parameter holding `value`; no gradient or optimizer state yet.
   * @param name Hugging Face name.
   * @param value The weight tensor; the parameter owns it.
   */
  constructor(
    /** Hugging Face name, e.g. `model.layers.0.mlp.gate_proj.weight`. */
    readonly name: string,
    readonly value: Tensor,
  ) {}

  /** Shape of the weight. */
  get shape(): readonly number[] {
    return this.value.shape;
  }

  /** The gradient tensor to accumulate into, created as zeros at first use. */
  gradFor(dev: Device): Tensor {
    return this.grad ??= dev.zeros(this.value.shape, { tag: "grads", name: `${this.name}.grad` });
  }

  /** Frees the gradient. */
  dropGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  /** Frees everything this parameter holds. */
  dispose(): void {
    this.dropGrad();
    this.m?.dispose();
    this.v?.dispose();
    this.m = this.v = null;
    this.master?.dispose();
    this.master = null;
    this.value.dispose();
  }
}

/** Disposes every tensor reachable in a saved record (objects, arrays, nested). */
export function disposeAll(v: unknown): void {
  if (v === null || v === undefined) return;
  if (typeof (v as Tensor).dispose === "function" && "shape" in (v as object)) {
    (v as Tensor).dispose();
  } else if (Array.isArray(v)) v.forEach(disposeAll);
  else if (typeof v === "object") Object.values(v as object).forEach(disposeAll);
}
