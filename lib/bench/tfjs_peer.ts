/**
 * TensorFlow.js (WebGPU backend) as the side-by-side peer for op benchmarks: the same
 * product timed in the same process, with its result returned so callers can check it.
 */

import { createTfjsPeer, type Tf } from "./tfjs_llama.ts";

export { createTfjsPeer, type Tf };

/** One timed peer matmul. */
export interface PeerMatmulResult {
  /** Median milliseconds per product (device-synchronized). */
  ms: number;
  /** The peer's C (M, N), row-major. */
  result: Float32Array;
  /** How the peer was called, when it differs from the requested layout. */
  note?: string;
}

/**
 * TF.js's `matMul` of op(A)·op(B) on `a`/`b` laid out as our matmul takes them (A (M, K) or
 * (K, M) with transA; B (K, N) or (N, K) with transB). Warms up once, then times `iters`
 * products (each awaited through `data()`), returning the median.
 *
 * TF.js 4.22 WebGPU's SplitK path returns wrong results for a transposed second operand with
 * K ≥ ~2000 (docs of the environment); for such shapes B is handed over untransposed (a host
 * transpose outside the timing) and `note` says so.
 */
export async function tfjsMatmul(
  tf: Tf,
  a: Float32Array,
  b: Float32Array,
  M: number,
  N: number,
  K: number,
  opts: { transA?: boolean; transB?: boolean; iters?: number } = {},
): Promise<PeerMatmulResult> {
  const transA = opts.transA ?? false;
  let transB = opts.transB ?? false;
  let bData = b;
  let note: string | undefined;
  if (transB && K >= 2000) {
    bData = new Float32Array(K * N); // (N, K) → (K, N)
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) bData[k * N + n] = b[n * K + k];
    transB = false;
    note = "peer given B untransposed (TF.js SplitK bug with transposed B, K ≥ 2000)";
  }
  const ta = tf.tensor2d(a, transA ? [K, M] : [M, K]);
  const tb = tf.tensor2d(bData, transB ? [N, K] : [K, N]);
  const run = async () => {
    const c = tf.matMul(ta, tb, transA, transB);
    const data = await c.data() as Float32Array;
    c.dispose();
    return data;
  };
  const result = await run(); // warm-up (compiles the program)
  const times: number[] = [];
  for (let i = 0; i < (opts.iters ?? 3); i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  ta.dispose();
  tb.dispose();
  return { ms: median(times), result, note };
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
