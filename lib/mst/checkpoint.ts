/**
 * Activation recomputation: `checkpoint(layer)` keeps only the layer's input (tagged
 * `checkpoints`) from forward to backward; backward recomputes the forward, then
 * back-propagates through the recomputed saved state.
 *
 * Checkpoint offload (policy `offload`): after the forward, {@link Checkpointed.offload} moves
 * the kept input to host memory (`device.toHost`: a pooled readback buffer, then an array the
 * runtime owns, counted under the `host` tag) and frees the device copy; before the
 * recomputation, {@link Checkpointed.restore} uploads it back (`device.fromHost`). Both are
 * asynchronous (they wait for the device), so the model calls them between layers. The bytes
 * are copied unchanged, so loss and gradients equal the run without offload bit for bit.
 *
 * Selective recomputation (policy `keepAttention`, `checkpoint(dev, layer, { keep: true })`):
 * a {@link KeepingLayer} (the decoder block) also keeps what is costly to recompute and cheap
 * to hold — the attention output and softmax statistics, (S, H·hd) + (H, S) f32 per block —
 * tagged `checkpoints`, and the recomputation skips the attention kernel. The recomputed saved
 * record is the same tensors, so loss and gradients equal full recomputation bit for bit.
 */

import type { Device } from "../device/device.ts";
import type { HostTensor } from "../device/host_tensor.ts";
import type { Tensor } from "../device/tensor.ts";
import {
  type Forward,
  isKeepingLayer,
  type KeepingLayer,
  recomputeSaved,
  type SeqLayer,
  view,
} from "../nn/layer.ts";
import { disposeAll } from "../nn/parameter.ts";

/** Saved state of a checkpointed layer: its input only, on the device or on the host. */
export interface CheckpointSaved {
  /** The layer input (S, d_in): a view of it, tagged `checkpoints`; null while offloaded. */
  x: Tensor | null;
  /** The input's host copy (S, d_in) while offloaded, else null. */
  host: HostTensor | null;
  /** What a keeping layer kept for selective recomputation (tagged `checkpoints`), else null. */
  kept: unknown;
}

/** Options of {@link checkpoint}. */
export interface CheckpointOptions {
  /**
   * Selective recomputation: keep what the layer marks as costly to recompute (a
   * {@link KeepingLayer}; the decoder block keeps its attention output and statistics).
   * Default false: keep the input only.
   */
  keep?: boolean;
}

/** A layer whose forward is recomputed in backward. */
export class Checkpointed<S> implements SeqLayer<CheckpointSaved> {
  readonly name: string;
  readonly rowWise: boolean;
  /** The inner layer when it keeps state (selective recomputation), else null. */
  readonly #keeping: KeepingLayer<S, unknown> | null;
  /**
   * Wraps `inner`; {@link checkpoint} is the usual way to create one.
   * @param dev The device.
   * @param inner The layer to recompute in backward.
   * @param opts `keep`: selective recomputation (needs a {@link KeepingLayer}).
   */
  constructor(readonly dev: Device, readonly inner: SeqLayer<S>, opts: CheckpointOptions = {}) {
    this.name = `checkpoint(${inner.name})`;
    this.rowWise = inner.rowWise;
    if (opts.keep && !isKeepingLayer(inner)) {
      throw new Error(
        `checkpoint(${inner.name}, { keep: true }): this layer keeps nothing for selective ` +
          `recomputation (it has no forwardKeeping / recomputeKeeping); wrap a decoder block, or ` +
          `drop keep`,
      );
    }
    this.#keeping = opts.keep ? inner as KeepingLayer<S, unknown> : null;
  }

  forward(x: Tensor): Forward<CheckpointSaved> {
    const keeping = this.#keeping;
    const f: Forward<S> & { kept?: unknown } = keeping
      ? keeping.forwardKeeping(x)
      : this.inner.forward(x);
    disposeAll(f.saved);
    const kept = keeping ? f.kept : null;
    for (const t of keeping ? keeping.keptTensors(kept) : []) this.dev.retag(t, "checkpoints");
    const input = view(x);
    this.dev.retag(input, "checkpoints");
    return { out: f.out, saved: { x: input, host: null, kept } };
  }

  /**
   * Moves the kept input to host memory: copies it out (waiting for the device), then frees
   * its device copy. The device bytes are released once every other view of the input is
   * disposed too.
   */
  async offload(s: CheckpointSaved): Promise<void> {
    if (!s.x) throw new Error(`${this.name}: the checkpoint is already offloaded`);
    s.host = await this.dev.toHost(s.x, `${this.inner.name}.checkpoint.host`);
    s.x.dispose();
    s.x = null;
  }

  /** Brings an offloaded input back to the device (tag `checkpoints`) and frees the host copy. */
  async restore(s: CheckpointSaved): Promise<void> {
    if (!s.host) return;
    s.x = await this.dev.fromHost(s.host, {
      tag: "checkpoints",
      name: `${this.inner.name}.checkpoint`,
    });
    s.host.dispose();
    s.host = null;
  }

  backward(dy: Tensor, s: CheckpointSaved): Tensor {
    if (!s.x) {
      throw new Error(
        `${this.name}: the checkpoint is on the host; await restore(saved) before backward`,
      );
    }
    const saved = this.#keeping && s.kept !== null
      ? this.#keeping.recomputeKeeping(s.x, s.kept)
      : recomputeSaved(this.inner, s.x);
    s.kept = null;
    s.x.dispose();
    s.x = null;
    return this.inner.backward(dy, saved);
  }
}

/** Wraps a layer with activation recomputation. */
export function checkpoint<S>(
  dev: Device,
  layer: SeqLayer<S>,
  opts: CheckpointOptions = {},
): Checkpointed<S> {
  return new Checkpointed(dev, layer, opts);
}
