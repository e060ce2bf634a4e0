/**
 * Benchmark of causal attention forward + backward at the tiny model's head shape, and the
 * `attention` rows of `deno task bench` beside TensorFlow.js.
 */

import type { Device } from "../device/device.ts";
import { attentionBackward, attentionForward, type AttentionOptions } from "../ops/attention.ts";
import { randomArray } from "../testing/all_close.ts";
import type { BenchRow } from "./row.ts";
import { benchTfjsAttention } from "./tfjs_attention.ts";
import type { Tf } from "./tfjs_peer.ts";

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
async function benchAttention(dev: Device, S: number): Promise<AttentionBenchResult> {
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

/** Max |x − y| / max |y|. */
function relDiff(x: Float32Array, y: Float32Array): number {
  let e = 0;
  let r = 1e-30;
  for (let i = 0; i < x.length; i++) {
    e = Math.max(e, Math.abs(x[i] - y[i]));
    r = Math.max(r, Math.abs(y[i]));
  }
  return e / r;
}

/** Ours (out, dq, dk, dv) on the given inputs, read back. */
async function oursOnce(
  dev: Device,
  S: number,
  opts: AttentionOptions,
  data: { q: Float32Array; k: Float32Array; v: Float32Array; dOut: Float32Array },
): Promise<Float32Array[]> {
  const { heads: H, kvHeads: KV, headDim: hd } = opts;
  const up = (x: Float32Array, cols: number, name: string) =>
    dev.upload(x, [S, cols], { tag: "data", name });
  const q = up(data.q, H * hd, "check.q");
  const k = up(data.k, KV * hd, "check.k");
  const v = up(data.v, KV * hd, "check.v");
  const dOut = up(data.dOut, H * hd, "check.dOut");
  const { out, lse } = attentionForward(dev, q, k, v, opts);
  const { dq, dk, dv } = attentionBackward(dev, dOut, q, k, v, out, lse, opts);
  const res = await Promise.all([out, dq, dk, dv].map((t) => dev.readF32(t)));
  for (const t of [q, k, v, dOut, out, lse, dq, dk, dv]) t.dispose();
  return res;
}

/**
 * Bench rows "attention fwd+bwd" at S ∈ `sizes` (H=4, KV=2, hd=16, causal), ours beside
 * TF.js running the same forward + backward (`tfjs_attention.ts`: S×S scores, mask, softmax,
 * `tf.grads`). Before timing, TF.js's out, dq, dk, dv are checked against ours at S=67 and
 * the largest relative difference goes into the note. Unit: tokens/s = S / (median ms of one
 * forward + backward); ratio = ours / peer = peer ms / our ms. TF.js takes tens of seconds
 * per run at S=2048 on lavapipe, so it is timed once there (after its warm-up).
 */
export async function benchAttentionRows(
  dev: Device,
  tf: Tf | null,
  log: (s: string) => void,
  sizes: number[] = [512, 2048],
): Promise<BenchRow[]> {
  const H = 4, KV = 2, hd = 16;
  const opts: AttentionOptions = { heads: H, kvHeads: KV, headDim: hd, scale: 1 / Math.sqrt(hd) };
  const inputs = (S: number) => ({
    q: Float32Array.from(randomArray(S * H * hd, 1)),
    k: Float32Array.from(randomArray(S * KV * hd, 2)),
    v: Float32Array.from(randomArray(S * KV * hd, 3)),
    dOut: Float32Array.from(randomArray(S * H * hd, 4)),
  });
  let check = "";
  if (tf) {
    const S = 67;
    const data = inputs(S);
    const ours = await oursOnce(dev, S, opts, data);
    const shape = { S, H, KV, hd, scale: opts.scale };
    const peer = (await benchTfjsAttention(tf, shape, data, 0)).result;
    const errs = [peer.out, peer.dq, peer.dk, peer.dv].map((x, i) => relDiff(x, ours[i]));
    const worst = Math.max(...errs);
    if (!(worst < 1e-3)) {
      throw new Error(
        `TF.js attention disagrees with ours at S=${S}: max rel diff out/dq/dk/dv ${
          errs.map((e) => e.toExponential(1)).join("/")
        }`,
      );
    }
    check = `TF.js matches ours at S=${S} (max rel diff ${worst.toExponential(1)})`;
  }
  const rows: BenchRow[] = [];
  for (const S of sizes) {
    const ours = await benchAttention(dev, S);
    let peerMs: number | null = null;
    if (tf) {
      const shape = { S, H, KV, hd, scale: opts.scale };
      peerMs = (await benchTfjsAttention(tf, shape, inputs(S), S <= 1024 ? 3 : 1)).ms;
    }
    const tps = (ms: number) => S / (ms / 1000);
    log(
      `attention fwd+bwd S=${S}: ours ${ours.ms.toFixed(1)} ms` +
        (peerMs === null
          ? ""
          : `, TF.js ${peerMs.toFixed(1)} ms (${(peerMs / ours.ms).toFixed(1)}×)`),
    );
    rows.push({
      name: ours.name,
      shape: `${ours.shape} causal`,
      ms: ours.ms,
      value: tps(ours.ms),
      unit: "tokens/s",
      peer: peerMs === null ? null : tps(peerMs),
      ratio: peerMs === null ? null : peerMs / ours.ms,
      note: peerMs === null
        ? "TF.js not run (--no-peer)"
        : `TF.js ${peerMs.toFixed(1)} ms (S×S scores + mask + softmax, tf.grads); ${check}`,
    });
  }
  return rows;
}
