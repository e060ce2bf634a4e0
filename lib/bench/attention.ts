/** Benchmark of causal attention forward + backward at the tiny model's head shape. */

import type { Device } from "../device/device.ts";
import { attentionBackward, attentionForward, type AttentionOptions } from "../ops/attention.ts";
import { randomArray } from "../testing/all_close.ts";

/** One benchmark result. */
export interface AttentionBenchResult {
  /** What was timed. */
  name: string;
  /** The problem shape, e.g. "S=1024 H=4 KV=2 hd=16". */
  shape: string;
  /** Median wall time of one forward + backward, in milliseconds (device synced). */
  ms: number;
}

/**
 * Times attention forward + backward (H=4, KV=2, hd=16, the tiny Llama's heads) at sequence
 * length `S`: one warm-up run (which also compiles the kernels), then the median of several
 * timed runs, each ending with `dev.sync()`. Every tensor it creates is disposed.
 */
export async function benchAttention(dev: Device, S: number): Promise<AttentionBenchResult> {
  const H = 4, KV = 2, hd = 16;
  const opts: AttentionOptions = { heads: H, kvHeads: KV, headDim: hd, scale: 1 / Math.sqrt(hd) };
  const input = (cols: number, seed: number, name: string) =>
    dev.upload(Float32Array.from(randomArray(S * cols, seed)), [S, cols], { tag: "data", name });
  const q = input(H * hd, 1, "bench.q"); // (S, H·hd)
  const k = input(KV * hd, 2, "bench.k"); // (S, KV·hd)
  const v = input(KV * hd, 3, "bench.v"); // (S, KV·hd)
  const dOut = input(H * hd, 4, "bench.dOut"); // (S, H·hd)
  const once = async (): Promise<number> => {
    const t0 = performance.now();
    const { out, lse } = attentionForward(dev, q, k, v, opts);
    const { dq, dk, dv } = attentionBackward(dev, dOut, q, k, v, out, lse, opts);
    await dev.sync();
    const ms = performance.now() - t0;
    for (const t of [out, lse, dq, dk, dv]) t.dispose();
    return ms;
  };
  try {
    await once();
    const reps = S <= 1024 ? 7 : 3;
    const times: number[] = [];
    for (let i = 0; i < reps; i++) times.push(await once());
    times.sort((a, b) => a - b);
    return {
      name: "attention fwd+bwd",
      shape: `S=${S} H=${H} KV=${KV} hd=${hd}`,
      ms: times[Math.floor(times.length / 2)],
    };
  } finally {
    for (const t of [q, k, v, dOut]) t.dispose();
  }
}
