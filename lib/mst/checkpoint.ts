/**
 * Activation recomputation: `checkpoint(layer)` keeps only the layer's input (tagged
 * `checkpoints`) from forward to backward; backward recomputes the forward, then
 * back-propagates through the recomputed saved state.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { type Forward, recomputeSaved, type SeqLayer, view } from "../nn/layer.ts";
import { disposeAll } from "../nn/parameter.ts";

/** Saved state of a checkpointed layer: its input only. */
export interface CheckpointSaved {
  /** The layer input (S, d_in): a view of it, tagged `checkpoints`. */
  x: Tensor;
}

/** A layer whose forward is recomputed in backward. */
export class Checkpointed<S> implements SeqLayer<CheckpointSaved> {
  readonly name: string;
  readonly rowWise: boolean;
  /**
   * Wraps `inner`; {@link checkpoint} is the usual way to create one.
   * @param dev The device.
   * @param inner The layer to recompute in backward.
   */
  constructor(readonly dev: Device, readonly inner: SeqLayer<S>) {
    this.name = `checkpoint(${inner.name})`;
    this.rowWise = inner.rowWise;
  }

  forward(x: Tensor): Forward<CheckpointSaved> {
    const f = this.inner.forward(x);
    disposeAll(f.saved);
    const kept = view(x);
    this.dev.retag(kept, "checkpoints");
    return { out: f.out, saved: { x: kept } };
  }

  backward(dy: Tensor, s: CheckpointSaved): Tensor {
    const saved = recomputeSaved(this.inner, s.x);
    s.x.dispose();
    return this.inner.backward(dy, saved);
  }
}

/** Wraps a layer with activation recomputation. */
export function checkpoint<S>(dev: Device, layer: SeqLayer<S>): Checkpointed<S> {
  return new Checkpointed(dev, layer);
}
