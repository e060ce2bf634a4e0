/**
 * The layer contract: layers own their saved state.
 *
 * `forward(x)` returns the output and a `saved` record of exactly what backward needs. A
 * layer never takes over its caller's tensors: to keep `x` it saves a view (`view(x)`, a
 * reference-counted reshape), so everyone disposes exactly what they hold. `backward(dy, saved)` consumes and frees
 * `saved`, accumulates parameter gradients (`+=`) and returns a new dx (`=`); it does not
 * free `dy`. What is kept from forward to backward is explicit and countable, which is the
 * whole subject of MsT: wrappers (`lib/mst`) change what is saved without touching layers.
 */

import type { Tensor } from "../device/tensor.ts";
import { disposeAll } from "./parameter.ts";

/** Output and saved record of a forward pass. */
export interface Forward<S> {
  /** The output (S, d_out). */
  out: Tensor;
  /** What backward needs; backward frees it. */
  saved: S;
}

/** A sequence layer (S, d_in) → (S, d_out) with explicit saved state. */
export interface SeqLayer<S = unknown> {
  /** Name for reports. */
  readonly name: string;
  /** Forward. */
  forward(x: Tensor): Forward<S>;
  /**
   * Forward for backward only (activation recomputation): the saved record without the
   * output, so work that only produces the output can be skipped. Optional; see
   * {@link recomputeSaved}.
   */
  recompute?(x: Tensor): S;
  /**
   * Forward for the output only, when the caller discards the saved record (the forward pass
   * of a layer recomputed in backward): may skip storing what only backward reads. Optional;
   * see {@link forwardOutput}.
   */
  forwardOut?(x: Tensor): Tensor;
  /** Backward; frees `saved`, returns dx. */
  backward(dy: Tensor, saved: S): Tensor;
  /** True if each output row depends only on the same input row (safe to split by rows). */
  readonly rowWise: boolean;
}

/**
 * A layer that can keep part of its saved record through recomputation (selective
 * recomputation): `forwardKeeping` also returns `kept` — new references to the tensors worth
 * keeping (costly to recompute, cheap to hold) — and `recomputeKeeping(x, kept)` rebuilds the
 * saved record from the input and `kept` without recomputing them. `recomputeKeeping` takes
 * over `kept` (the saved record holds it; backward frees it).
 */
export interface KeepingLayer<S, K> extends SeqLayer<S> {
  /** Forward, plus what to keep until backward. */
  forwardKeeping(x: Tensor): Forward<S> & { kept: K };
  /** The saved record from the input and the kept tensors (taken over). */
  recomputeKeeping(x: Tensor, kept: K): S;
  /** Every tensor of a kept record (for accounting tags and disposal). */
  keptTensors(kept: K): Tensor[];
}

/** True when `layer` implements {@link KeepingLayer}. */
export function isKeepingLayer<S>(layer: SeqLayer<S>): layer is KeepingLayer<S, unknown> {
  const l = layer as Partial<KeepingLayer<S, unknown>>;
  return typeof l.forwardKeeping === "function" && typeof l.recomputeKeeping === "function";
}

/** A new reference to `t`'s storage (released by its own dispose). */
export function view(t: Tensor): Tensor {
  return t.reshape(t.shape);
}

/** The output of `layer` at `x` alone, via `forwardOut` when the layer has it. */
export function forwardOutput<S>(layer: SeqLayer<S>, x: Tensor): Tensor {
  if (layer.forwardOut) return layer.forwardOut(x);
  const f = layer.forward(x);
  disposeAll(f.saved);
  return f.out;
}

/** The saved record of `layer` at `x`, via `recompute` when the layer has it. */
export function recomputeSaved<S>(layer: SeqLayer<S>, x: Tensor): S {
  if (layer.recompute) return layer.recompute(x);
  const f = layer.forward(x);
  f.out.dispose();
  return f.saved;
}
