/**
 * `miniSequence(layer, { chunks })`: runs a row-wise layer (the MLP) over M contiguous
 * mini-sequences, writing each chunk's output into one (S, d_out) tensor. Only the input
 * is kept for backward; backward recomputes each chunk's forward and back-propagates it, so
 * the (S, I) intermediates exist only as (S/M, I) transients and weight gradients accumulate
 * over chunks.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { type Forward, forwardOutput, recomputeSaved, type SeqLayer, view } from "../nn/layer.ts";
import { chunkRanges, type Chunks, resolveChunks } from "./chunking.ts";

/** Saved state: the input and the M used in forward. */
export interface MiniSequenceSaved {
  /** The input (S, d_in): a view of it. */
  x: Tensor;
  /** Number of mini-sequences used in forward. */
  M: number;
}

/** Options of {@link miniSequence}. */
export interface MiniSequenceOptions {
  /** M, or "auto" (see `chunking.ts`). */
  chunks: Chunks;
  /** Output width of the wrapped layer. */
  outFeatures: number;
  /** Widest intermediate per row (I for the MLP), for the auto rule. */
  widestRow: number;
  /** Transient bytes one row of a chunk allocates, for the auto rule. */
  bytesPerRow: number;
  /** Row count per chunk targeted by the shape rule (d for the MLP). */
  rowsPerChunk: number;
}

/** The mini-sequence wrapper. */
export class MiniSequence<S> implements SeqLayer<MiniSequenceSaved> {
  readonly rowWise = true;
  readonly name: string;
  /** M used by the last forward. */
  lastChunks = 0;
  /**
   * Throws unless `inner` is row-wise.
   * @param dev The device.
   * @param inner The row-wise layer to run over mini-sequences.
   * @param opts Chunking options.
   */
  constructor(
    readonly dev: Device,
    readonly inner: SeqLayer<S>,
    readonly opts: MiniSequenceOptions,
  ) {
    if (!inner.rowWise) {
      throw new Error(
        `miniSequence: "${inner.name}" mixes rows (e.g. attention); only row-wise layers can be split`,
      );
    }
    this.name = `miniSequence(${inner.name})`;
  }

  #m(S: number): number {
    return resolveChunks(this.dev, this.opts.chunks, {
      S,
      shapeRule: Math.ceil(S / this.opts.rowsPerChunk),
      widestRow: this.opts.widestRow,
      bytesPerRow: this.opts.bytesPerRow,
    });
  }

  forward(x: Tensor): Forward<MiniSequenceSaved> {
    const dev = this.dev;
    const [S, dIn] = x.shape;
    const M = this.#m(S);
    this.lastChunks = M;
    const out = dev.tensor([S, this.opts.outFeatures], {
      tag: "activations",
      name: `${this.inner.name}.out`,
    });
    for (const [r0, r1] of chunkRanges(S, M)) {
      const n = r1 - r0;
      const xi = dev.tensor([n, dIn], { tag: "activations", name: `${this.inner.name}.x_chunk` });
      dev.copy(x, r0 * dIn, xi, 0, n * dIn);
      const yi = forwardOutput(this.inner, xi); // nothing saved: backward recomputes
      xi.dispose();
      dev.copy(yi, 0, out, r0 * this.opts.outFeatures, n * this.opts.outFeatures);
      yi.dispose();
    }
    return { out, saved: { x: view(x), M } };
  }

  /** Recomputation needs nothing but the input: backward recomputes each chunk anyway. */
  recompute(x: Tensor): MiniSequenceSaved {
    const M = this.#m(x.shape[0]);
    this.lastChunks = M;
    return { x: view(x), M };
  }

  backward(dy: Tensor, s: MiniSequenceSaved): Tensor {
    const dev = this.dev;
    const [S, dIn] = s.x.shape;
    const dOut = this.opts.outFeatures;
    const dx = dev.tensor([S, dIn], { tag: "activations", name: `${this.inner.name}.dx` });
    for (const [r0, r1] of chunkRanges(S, s.M)) {
      const n = r1 - r0;
      const xi = dev.tensor([n, dIn], { tag: "activations", name: `${this.inner.name}.x_chunk` });
      dev.copy(s.x, r0 * dIn, xi, 0, n * dIn);
      const saved = recomputeSaved(this.inner, xi);
      xi.dispose();
      const dyi = dev.tensor([n, dOut], {
        tag: "activations",
        name: `${this.inner.name}.dy_chunk`,
      });
      dev.copy(dy, r0 * dOut, dyi, 0, n * dOut);
      const dxi = this.inner.backward(dyi, saved);
      dyi.dispose();
      dev.copy(dxi, 0, dx, r0 * dIn, n * dIn);
      dxi.dispose();
    }
    s.x.dispose();
    return dx;
  }
}

/** Wraps a row-wise layer into mini-sequences. */
export function miniSequence<S>(
  dev: Device,
  layer: SeqLayer<S>,
  opts: MiniSequenceOptions,
): MiniSequence<S> {
  return new MiniSequence(dev, layer, opts);
}
