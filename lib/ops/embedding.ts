/** Token embedding: lookup (forward) and a race-free scatter-add (backward) via a host CSR index. */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import { expectShape, type Tensor } from "../device/tensor.ts";
import { ceilDiv, grid1d } from "./util.ts";

/**
 * out (S, d) = scale · table[ids].
 *
 * @param ids token ids, i32 (S); an id outside 0..V-1 gives a NaN row (ids are validated on
 *   the host by {@link embeddingGradIndex}).
 * @param table embedding table (V, d)
 */
export function embeddingForward(
  dev: Device,
  ids: Tensor,
  table: Tensor,
  opts: { scale?: number; tag?: Tag; name?: string } = {},
): Tensor {
  if (ids.dtype !== "i32" || ids.shape.length !== 1) {
    throw new Error(
      `embeddingForward: ids must be i32 of shape [S], got ${ids.dtype} [${ids.shape.join(", ")}]`,
    );
  }
  if (table.shape.length !== 2) {
    throw new Error(
      `embeddingForward: table must be [V, d], got [${table.shape.join(", ")}]`,
    );
  }
  const [S] = ids.shape;
  const [V, d] = table.shape;
  const out = dev.tensor([S, d], {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "embedding",
  }); // (S, d)
  const [nx, ny] = grid1d(ceilDiv(S * d, 256));
  dev.dispatch({
    kernel: "embedding_forward",
    bindings: [ids, table, out],
    params: new Params().u32(S * d).u32(d).u32(V).f32(opts.scale ?? 1).u32(nx),
    workgroups: [nx, ny],
  });
  return out;
}

/**
 * Positions of each token in a sequence, as CSR on the device (tag `data`): the positions of
 * token v are `positions[offsets[v] .. offsets[v+1]]`, in increasing order.
 */
export interface EmbeddingGradIndex {
  /** Vocabulary size V. */
  readonly vocab: number;
  /** Sequence length S. */
  readonly length: number;
  /** (V + 1) i32 row starts. */
  readonly offsets: Tensor;
  /** (S) i32 sequence positions grouped by token. */
  readonly positions: Tensor;
  /** Frees both tensors. */
  dispose(): void;
}

/**
 * Builds the backward index of `ids` on the host (a counting sort) and uploads it.
 * Throws if an id is outside 0..V-1.
 */
export function embeddingGradIndex(dev: Device, ids: Int32Array, V: number): EmbeddingGradIndex {
  if (!Number.isInteger(V) || V <= 0) {
    throw new Error(`embeddingGradIndex: vocabulary size must be a positive integer, got ${V}`);
  }
  const S = ids.length;
  const offsets = new Int32Array(V + 1);
  for (let s = 0; s < S; s++) {
    const id = ids[s];
    if (!(id >= 0 && id < V)) {
      throw new Error(
        `embeddingGradIndex: token id ${id} at position ${s} is outside the vocabulary 0..${V - 1}`,
      );
    }
    offsets[id + 1]++;
  }
  for (let v = 0; v < V; v++) offsets[v + 1] += offsets[v];
  const next = offsets.slice(0, V);
  const positions = new Int32Array(S);
  for (let s = 0; s < S; s++) positions[next[ids[s]]++] = s;
  const offT = dev.upload(offsets, [V + 1], { tag: "data", name: "embedding.offsets" });
  const posT = dev.upload(positions, [S], { tag: "data", name: "embedding.positions" });
  return {
    vocab: V,
    length: S,
    offsets: offT,
    positions: posT,
    dispose() {
      offT.dispose();
      posT.dispose();
    },
  };
}

/**
 * dTable (V, d) += scale · Σ_{s: ids[s] = v} dy[s], race-free (each invocation owns one
 * token's block of 4 columns; no atomics).
 *
 * @param index from {@link embeddingGradIndex} for the ids of the forward pass
 * @param dy gradient of the embedding output (S, d)
 * @param dTable table gradient (V, d), accumulated
 */
export function embeddingBackward(
  dev: Device,
  index: EmbeddingGradIndex,
  dy: Tensor,
  dTable: Tensor,
  opts: { scale?: number } = {},
): void {
  const V = index.vocab;
  if (dTable.shape.length !== 2 || dTable.shape[0] !== V) {
    throw new Error(
      `embeddingBackward: dTable: expected shape [${V}, d], got [${dTable.shape.join(", ")}]`,
    );
  }
  const d = dTable.shape[1];
  expectShape(dy, [index.length, d], "embeddingBackward: dy");
  const cb = ceilDiv(d, 4);
  const [nx, ny] = grid1d(ceilDiv(V * cb, 256));
  dev.dispatch({
    kernel: "embedding_backward",
    bindings: [index.offsets, index.positions, dy, dTable],
    params: new Params().u32(V).u32(d).u32(cb).f32(opts.scale ?? 1).u32(nx),
    workgroups: [nx, ny],
  });
}
