/**
 * Parameters: a weight tensor, its gradient (allocated at the first contribution and freed
 * after the optimizer uses it, like PyTorch's `zero_grad(set_to_none=True)`), and AdamW
 * state (allocated at the first update).
 *
 * Rule, stated once: parameter gradients accumulate (`+=`), activation gradients overwrite.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import type { Nf4Weight } from "../ops/nf4_matmul.ts";

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
   * A frozen parameter (a LoRA base weight or bias) takes no gradient and no optimizer state:
   * {@link gradFor} throws, and AdamW skips it. Its `value` is still used by the layers.
   */
  frozen = false;
  /**
   * A frozen weight stored in NF4 (QLoRA's base): the layers read this instead of `value`,
   * which is then null. Freed with the parameter.
   */
  quantized: Nf4Weight | null = null;
  /** Shape of the weight. */
  readonly shape: readonly number[];
  /**
   * The full weight, or null while it is partitioned (ZeRO-3 on a planned rank, see
   * `lib/sharding/zero.ts`: only the rank's shard is resident, and the full weight exists between
   * a gather and its release).
   */
  #value: Tensor | null;

  /**
   * A named parameter holding `value`; no gradient or optimizer state yet.
   * @param name Hugging Face name.
   * @param value The weight tensor, which the parameter owns; null for a partitioned
   *   parameter (ZeRO-3), whose `shape` must then be given.
   * @param shape The weight's shape when `value` is null.
   */
  constructor(
    /** Hugging Face name, e.g. `model.layers.0.mlp.gate_proj.weight`. */
    readonly name: string,
    value: Tensor | null,
    shape?: readonly number[],
  ) {
    this.#value = value;
    const s = value?.shape ?? shape;
    if (!s) throw new Error(`parameter "${name}": give a value or the shape of one`);
    this.shape = s;
  }

  /** The weight tensor; throws while the parameter is partitioned and not gathered. */
  get value(): Tensor {
    if (!this.#value && this.quantized) {
      throw new Error(
        `parameter "${this.name}" is stored in NF4 (a QLoRA base): read it through .quantized`,
      );
    }
    if (!this.#value) {
      throw new Error(
        `parameter "${this.name}" is partitioned (ZeRO-3): gather it before use`,
      );
    }
    return this.#value;
  }

  /** True while the full weight is resident. */
  get resident(): boolean {
    return this.#value !== null;
  }

  /**
   * Replaces the full weight: frees the resident one (if any) and holds `value` (or nothing).
   * Used by ZeRO-3 partitioning, gathers and releases.
   */
  setValue(value: Tensor | null): void {
    if (value && value.size !== this.shape.reduce((a, b) => a * b, 1)) {
      throw new Error(
        `parameter "${this.name}": a value of ${value.size} elements, expected [${
          this.shape.join(", ")
        }]`,
      );
    }
    this.#value?.dispose();
    this.#value = value;
  }

  /** The gradient tensor to accumulate into, created as zeros at first use. */
  gradFor(dev: Device): Tensor {
    if (this.frozen) {
      throw new Error(
        `parameter "${this.name}" is frozen: it takes no gradient (a layer must skip its ` +
          "weight gradient; unfreeze it to train it)",
      );
    }
    return this.grad ??= dev.zeros(this.shape, { tag: "grads", name: `${this.name}.grad` });
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
    this.#value?.dispose();
    this.#value = null;
    this.quantized?.dispose();
    this.quantized = null;
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
