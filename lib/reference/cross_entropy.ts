/** f64 reference of the (soft-capped) cross-entropy and its backward. */

function capped(x: number, softcap: number): number {
  return softcap > 0 ? softcap * Math.tanh(x / softcap) : x;
}

/** Per-row losses (N) of logits (N, V); 0 for ignored targets. */
export function crossEntropyLossesRef(
  logits: Float64Array,
  targets: ArrayLike<number>,
  N: number,
  V: number,
  softcap = 0,
  ignoreIndex = -100,
): Float64Array {
  const out = new Float64Array(N); // (N)
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t === ignoreIndex) continue;
    const z = Array.from({ length: V }, (_, v) => capped(logits[n * V + v], softcap));
    const m = z.reduce((a, b) => Math.max(a, b), -Infinity);
    const lse = m + Math.log(z.reduce((a, zv) => a + Math.exp(zv - m), 0));
    out[n] = lse - z[t];
  }
  return out;
}

/** dlogits (N, V) = gradScale · (softmax(z) − onehot) · dz/dx; zero rows for ignored targets. */
export function crossEntropyBackwardRef(
  logits: Float64Array,
  targets: ArrayLike<number>,
  N: number,
  V: number,
  gradScale: number,
  softcap = 0,
  ignoreIndex = -100,
): Float64Array {
  const out = new Float64Array(N * V); // (N, V)
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t === ignoreIndex) continue;
    const z = Array.from({ length: V }, (_, v) => capped(logits[n * V + v], softcap));
    const m = z.reduce((a, b) => Math.max(a, b), -Infinity);
    const sum = z.reduce((a, zv) => a + Math.exp(zv - m), 0);
    for (let v = 0; v < V; v++) {
      let g = Math.exp(z[v] - m) / sum - (v === t ? 1 : 0);
      if (softcap > 0) g *= 1 - (z[v] / softcap) ** 2;
      out[n * V + v] = gradScale * g;
    }
  }
  return out;
}
