/** f64 reference of the embedding lookup and its backward. */

/** out (S, d) = scale · table[ids]; table is (V, d). */
export function embeddingForwardRef(
  ids: ArrayLike<number>,
  table: Float64Array,
  V: number,
  d: number,
  scale = 1,
): Float64Array {
  const S = ids.length;
  const out = new Float64Array(S * d); // (S, d)
  for (let s = 0; s < S; s++) {
    const id = ids[s];
    if (!(id >= 0 && id < V)) throw new Error(`token id ${id} at ${s} outside 0..${V - 1}`);
    for (let c = 0; c < d; c++) out[s * d + c] = scale * table[id * d + c];
  }
  return out;
}

/** dTable (V, d) += scale · Σ_{s: ids[s] = v} dy[s]; dy is (S, d). Returns dTable. */
export function embeddingBackwardRef(
  ids: ArrayLike<number>,
  dy: Float64Array,
  dTable: Float64Array,
  d: number,
  scale = 1,
): Float64Array {
  for (let s = 0; s < ids.length; s++) {
    for (let c = 0; c < d; c++) dTable[ids[s] * d + c] += scale * dy[s * d + c];
  }
  return dTable;
}
