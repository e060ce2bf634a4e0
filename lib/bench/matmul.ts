/**
 * Matmul benchmark rows: our kernels beside TensorFlow.js's WebGPU backend on the same
 * shapes, in the same process. Results are checked (sampled f64 reference, and ours vs the
 * peer) before anything is timed.
 */

import type { WebGPUDevice } from "../device/webgpu.ts";
import { matmul } from "../ops/matmul.ts";
import { randomArray } from "../testing/all_close.ts";
import type { BenchRow } from "./row.ts";
import { median, type Tf, tfjsMatmul } from "./tfjs_peer.ts";

/** One benchmarked product C (M, N) = op(A)·op(B). */
export interface MatmulCase {
  name: string;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** Timed iterations (default 3). */
  iters?: number;
}

/** The cases: 1024³, the tiny preset's training shapes (S=1024, d=64, I=224, V=2048), a full-size slice. */
const MATMUL_CASES: MatmulCase[] = [
  { name: "matmul 1024³", M: 1024, N: 1024, K: 1024 },
  { name: "matmul 1024³ Bᵀ", M: 1024, N: 1024, K: 1024, transB: true },
  { name: "tiny attn proj x·Wᵀ", M: 1024, N: 64, K: 64, transB: true, iters: 7 },
  { name: "tiny MLP up x·Wᵀ", M: 1024, N: 224, K: 64, transB: true, iters: 7 },
  { name: "tiny MLP down x·Wᵀ", M: 1024, N: 64, K: 224, transB: true, iters: 7 },
  { name: "tiny LM head x·Wᵀ", M: 1024, N: 2048, K: 64, transB: true, iters: 5 },
  { name: "tiny LM head dx = dy·W", M: 1024, N: 64, K: 2048, iters: 5 },
  { name: "tiny LM head dW = dyᵀ·x", M: 2048, N: 64, K: 1024, transA: true, iters: 5 },
  { name: "tiny MLP up dW = dyᵀ·x", M: 224, N: 64, K: 1024, transA: true, iters: 7 },
  { name: "8B q_proj slice x·Wᵀ", M: 256, N: 512, K: 4096, transB: true },
];

function shapeOf(c: MatmulCase): string {
  const a = c.transA ? `(${c.K},${c.M})ᵀ` : `(${c.M},${c.K})`;
  const b = c.transB ? `(${c.N},${c.K})ᵀ` : `(${c.K},${c.N})`;
  return `${a}·${b}`;
}

/** C[m, n] of op(A)·op(B) in f64 for a few sampled entries; max |ours − ref| / max |ref|. */
function sampledError(c: MatmulCase, a: Float32Array, b: Float32Array, out: Float32Array): number {
  let maxErr = 0;
  let maxRef = 1e-30;
  for (let t = 0; t < 64; t++) {
    const m = (t * 7919) % c.M;
    const n = (t * 104729) % c.N;
    let s = 0;
    for (let k = 0; k < c.K; k++) {
      s += (c.transA ? a[k * c.M + m] : a[m * c.K + k]) *
        (c.transB ? b[n * c.K + k] : b[k * c.N + n]);
    }
    maxErr = Math.max(maxErr, Math.abs(out[m * c.N + n] - s));
    maxRef = Math.max(maxRef, Math.abs(s));
  }
  return maxErr / maxRef;
}

/** max |x − y| / max |y|. */
function relDiff(x: Float32Array, y: Float32Array): number {
  let e = 0;
  let r = 1e-30;
  for (let i = 0; i < x.length; i++) {
    e = Math.max(e, Math.abs(x[i] - y[i]));
    r = Math.max(r, Math.abs(y[i]));
  }
  return e / r;
}

/**
 * Benchmarks each case on `dev` (and on TF.js when `tf` is given): one checked warm-up, then
 * `iters` timed products with device sync, median. Throws if our result is wrong.
 */
export async function benchMatmul(
  dev: WebGPUDevice,
  tf: Tf | null,
  cases: MatmulCase[] = MATMUL_CASES,
  log: (s: string) => void = () => {},
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const c of cases) {
    const iters = c.iters ?? 3;
    const a = Float32Array.from(randomArray(c.M * c.K, 1));
    const b = Float32Array.from(randomArray(c.K * c.N, 2));
    const ta = dev.upload(a, c.transA ? [c.K, c.M] : [c.M, c.K], { tag: "data", name: "A" });
    const tb = dev.upload(b, c.transB ? [c.N, c.K] : [c.K, c.N], { tag: "data", name: "B" });
    const out = dev.tensor([c.M, c.N], { tag: "activations", name: "C" });
    const run = () => matmul(dev, ta, tb, { transA: c.transA, transB: c.transB, out });
    run();
    const ours = await dev.readF32(out);
    const err = sampledError(c, a, b, ours);
    if (!(err < 1e-4)) {
      throw new Error(`bench ${c.name}: our result is off by ${err.toExponential(2)} (relative)`);
    }
    const times: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      run();
      await dev.sync();
      times.push(performance.now() - t0);
    }
    for (const t of [ta, tb, out]) t.dispose();
    const ms = median(times);
    const gflop = 2 * c.M * c.N * c.K / 1e9;
    const row: BenchRow = {
      name: c.name,
      shape: shapeOf(c),
      ms,
      value: gflop / (ms / 1e3),
      unit: "GFLOP/s",
      peer: null,
      ratio: null,
    };
    if (tf) {
      const p = await tfjsMatmul(tf, a, b, c.M, c.N, c.K, { ...c, iters });
      const d = relDiff(p.result, ours);
      const notes = [p.note];
      if (d > 1e-3) {
        notes.push(`peer result differs from ours by ${d.toExponential(1)}: peer wrong`);
      }
      row.peer = gflop / (p.ms / 1e3);
      row.ratio = row.value / row.peer;
      row.note = notes.filter(Boolean).join("; ") || undefined;
    }
    log(
      `${row.name} ${row.shape}: ${row.value.toFixed(2)} GFLOP/s` +
        (row.peer === null ? "" : ` (TF.js ${row.peer.toFixed(2)})`),
    );
    rows.push(row);
  }
  return rows;
}
