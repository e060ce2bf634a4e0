/**
 * How a sequence is split into mini-sequences, and the `"auto"` rule for M.
 *
 * Rows are split into M contiguous chunks whose sizes differ by at most one (the first
 * S mod M chunks get one extra row), so S mod M ≠ 0 loses nothing; with S < M there are S
 * chunks of one row.
 *
 * `"auto"` takes the largest of three lower bounds on M:
 * 1. the shape rule of the paper's Hugging Face integration: ⌈V/d⌉ for the LM head,
 *    ⌈S/d⌉ for the MLP (chunks of about d rows);
 * 2. the storage-binding limit: a chunk's widest tensor, rows × width × bytes, must fit the
 *    device's `maxStorageBufferBindingSize`;
 * 3. the remaining memory budget: the chunk's transient bytes (rows × `bytesPerRow`) may use
 *    at most a quarter of the budget left when the layer runs.
 *
 * The shape rule is capped so chunks keep at least {@link MIN_AUTO_ROWS} rows: below that a
 * chunk saves little memory but pays a kernel launch per op (on small models such as the
 * tiny presets, d = 64 would give 64-row chunks). The binding and budget rules are never
 * capped: when memory demands smaller chunks, chunks get smaller.
 */

/** Fewest rows per chunk the `"auto"` shape rule produces. */
export const MIN_AUTO_ROWS = 256;

import type { Device } from "../device/device.ts";

/** A requested number of mini-sequences. */
export type Chunks = number | "auto";

/** [start, end) row ranges of M near-equal contiguous chunks of S rows. */
export function chunkRanges(S: number, M: number): [number, number][] {
  if (!Number.isInteger(M) || M < 1) {
    throw new Error(`mini-sequences: chunks must be a positive integer or "auto", got ${M}`);
  }
  const m = Math.min(M, Math.max(S, 1));
  const base = Math.floor(S / m);
  const extra = S % m;
  const out: [number, number][] = [];
  let r = 0;
  for (let i = 0; i < m; i++) {
    const n = base + (i < extra ? 1 : 0);
    out.push([r, r + n]);
    r += n;
  }
  return out;
}

/** Inputs of the `"auto"` rule. */
export interface AutoChunkInput {
  /** Rows S. */
  S: number;
  /** Shape-rule target M (⌈V/d⌉ or ⌈S/d⌉). */
  shapeRule: number;
  /** Widest per-row tensor width (V for the head, I for the MLP). */
  widestRow: number;
  /** Transient bytes per chunk row (all tensors a chunk allocates, per row). */
  bytesPerRow: number;
}

/**
 * Resolves `chunks` to the M actually run for this device and its current memory state:
 * a requested M above S is capped at S (chunks of one row), as {@link chunkRanges} splits.
 */
export function resolveChunks(dev: Device, chunks: Chunks, input: AutoChunkInput): number {
  if (chunks !== "auto") {
    if (!Number.isInteger(chunks) || chunks < 1) {
      throw new Error(`mini-sequences: chunks must be a positive integer or "auto", got ${chunks}`);
    }
    return Math.min(chunks, Math.max(input.S, 1));
  }
  const { S, shapeRule, widestRow, bytesPerRow } = input;
  const elem = dev.floats === "f32" ? 4 : 2;
  const maxBind = dev.limits.maxStorageBufferBindingSize;
  const bindRows = Number.isFinite(maxBind)
    ? Math.max(1, Math.floor(maxBind / (widestRow * elem)))
    : S;
  const left = dev.allocator.budget - dev.allocator.liveBytes;
  const budgetRows = Number.isFinite(left) ? Math.max(1, Math.floor(left / 4 / bytesPerRow)) : S;
  const shapeM = Math.min(shapeRule, Math.max(1, Math.floor(S / MIN_AUTO_ROWS)));
  const m = Math.max(shapeM, Math.ceil(S / bindRows), Math.ceil(S / budgetRows), 1);
  return Math.min(m, Math.max(S, 1));
}
