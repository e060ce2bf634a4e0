/**
 * Plain f64 references for matmul and linear layers (row-major `Float64Array`s, the same
 * shapes as lib/ops/matmul.ts and lib/ops/linear.ts).
 */

/** C (M, N) = op(A)·op(B) (+ C0 when given); A is (M, K) or (K, M) with transA, B (K, N) or (N, K). */
export function matmulRef(
  a: Float64Array,
  b: Float64Array,
  M: number,
  N: number,
  K: number,
  opts: { transA?: boolean; transB?: boolean; c0?: Float64Array } = {},
): Float64Array {
  if (a.length !== M * K || b.length !== K * N) {
    throw new Error(`matmulRef: sizes ${a.length}, ${b.length} do not match M=${M} N=${N} K=${K}`);
  }
  const c = opts.c0 ? Float64Array.from(opts.c0) : new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const av = opts.transA ? a[k * M + m] : a[m * K + k];
        const bv = opts.transB ? b[n * K + k] : b[k * N + n];
        s += av * bv;
      }
      c[m * N + n] += s;
    }
  }
  return c;
}

/** y (N, out) = x (N, in)·wᵀ (w is (out, in)) + bias (out). */
export function linearForwardRef(
  x: Float64Array,
  w: Float64Array,
  bias: Float64Array | undefined,
  N: number,
  inF: number,
  outF: number,
): Float64Array {
  const y = matmulRef(x, w, N, outF, inF, { transB: true });
  if (bias) {
    for (let i = 0; i < N; i++) for (let o = 0; o < outF; o++) y[i * outF + o] += bias[o];
  }
  return y;
}

/** Gradients of a linear layer: dx (N, in) = dy·w, dw (out, in) = dyᵀ·x, db (out) = Σ_rows dy. */
export function linearBackwardRef(
  dy: Float64Array,
  x: Float64Array,
  w: Float64Array,
  N: number,
  inF: number,
  outF: number,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const dx = matmulRef(dy, w, N, inF, outF);
  const dw = matmulRef(dy, x, outF, inF, N, { transA: true });
  const db = new Float64Array(outF);
  for (let i = 0; i < N; i++) for (let o = 0; o < outF; o++) db[o] += dy[i * outF + o];
  return { dx, dw, db };
}
