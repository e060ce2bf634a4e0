/** Token embedding: h = scale·E[ids] (Gemma-2: scale = √d). */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { embeddingBackward, embeddingForward, type EmbeddingGradIndex } from "../ops/embedding.ts";
import type { Parameter } from "./parameter.ts";

/** The embedding layer. Backward needs the host-built gradient index of the batch. */
export class Embedding {
  /**
   * An embedding layer over `weight`.
   * @param dev The device.
   * @param weight Embedding matrix E (V, d).
   * @param scale Output scale (√d for Gemma-2, else 1).
   */
  constructor(
    readonly dev: Device,
    readonly weight: Parameter, // (V, d)
    readonly scale: number,
  ) {}

  /** ids i32 (S) → h (S, d). */
  forward(ids: Tensor): Tensor {
    return embeddingForward(this.dev, ids, this.weight.value, { scale: this.scale, name: "embed" });
  }

  /** dE += scale·Σ dh rows per token (nothing when the table is frozen: LoRA). */
  backward(dh: Tensor, index: EmbeddingGradIndex): void {
    if (this.weight.frozen) return;
    embeddingBackward(this.dev, index, dh, this.weight.gradFor(this.dev), { scale: this.scale });
  }
}
