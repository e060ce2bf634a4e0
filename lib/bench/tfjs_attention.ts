/**
 * Causal grouped-query attention in TensorFlow.js (WebGPU backend), written the way a TF.js
 * user would: the full S×S score matrix per head, an additive causal mask, `tf.softmax`, and
 * the backward from `tf.grads` with respect to q, k and v given dOut. The peer of our
 * `attentionForward` + `attentionBackward` in `deno task bench --only attention`.
 */

import { median, type Tf } from "./tfjs_peer.ts";

type TfTensor = ReturnType<Tf["tensor"]>;

/** Shape of one attention problem (batch 1, head h reads kv head ⌊h·KV/H⌋). */
export interface TfjsAttentionShape {
  S: number;
  H: number;
  KV: number;
  hd: number;
  scale: number;
}

/** TF.js's forward output and gradients, row-major like ours. */
export interface TfjsAttentionResult {
  /** out (S, H·hd). */
  out: Float32Array;
  /** dq (S, H·hd). */
  dq: Float32Array;
  /** dk (S, KV·hd). */
  dk: Float32Array;
  /** dv (S, KV·hd). */
  dv: Float32Array;
}

/**
 * Builds the forward + backward of causal GQA attention on `tf` for the given inputs
 * (q, dOut (S, H·hd); k, v (S, KV·hd)). `run()` computes out, dq, dk, dv and waits for all
 * of them (`data()`); `dispose()` frees the inputs and the mask.
 */
function tfjsAttention(
  tf: Tf,
  shape: TfjsAttentionShape,
  data: { q: Float32Array; k: Float32Array; v: Float32Array; dOut: Float32Array },
): { run: () => Promise<TfjsAttentionResult>; dispose: () => void } {
  const { S, H, KV, hd, scale } = shape;
  const mask = new Float32Array(S * S); // additive causal mask (S, S)
  for (let i = 0; i < S; i++) for (let j = i + 1; j < S; j++) mask[i * S + j] = -1e9;
  const tMask = tf.tensor2d(mask, [S, S]);
  const tq = tf.tensor2d(data.q, [S, H * hd]);
  const tk = tf.tensor2d(data.k, [S, KV * hd]);
  const tv = tf.tensor2d(data.v, [S, KV * hd]);
  const tdo = tf.tensor2d(data.dOut, [S, H * hd]);
  const kvIndex = tf.tensor1d(Array.from({ length: H }, (_, h) => Math.floor(h * KV / H)), "int32");
  // (S, n·hd) → (n, S, hd)
  const heads = (x: TfTensor, n: number) => tf.transpose(tf.reshape(x, [S, n, hd]), [1, 0, 2]);
  const forward = (q: TfTensor, k: TfTensor, v: TfTensor): TfTensor => {
    const qh = heads(q, H); // (H, S, hd)
    const kh = tf.gather(heads(k, KV), kvIndex, 0); // (H, S, hd)
    const vh = tf.gather(heads(v, KV), kvIndex, 0); // (H, S, hd)
    const scores = tf.add(tf.mul(tf.matMul(qh, kh, false, true), scale), tMask); // (H, S, S)
    const out = tf.matMul(tf.softmax(scores), vh); // (H, S, hd)
    return tf.reshape(tf.transpose(out, [1, 0, 2]), [S, H * hd]);
  };
  const gradFn = tf.grads((q, k, v) => forward(q, k, v));
  const run = async (): Promise<TfjsAttentionResult> => {
    const [out, dq, dk, dv] = tf.tidy(() => {
      const o = forward(tq, tk, tv);
      const g = gradFn([tq, tk, tv], tdo);
      return [o, ...g];
    });
    const res = await Promise.all([out, dq, dk, dv].map((t) => t.data() as Promise<Float32Array>));
    for (const t of [out, dq, dk, dv]) t.dispose();
    return { out: res[0], dq: res[1], dk: res[2], dv: res[3] };
  };
  const dispose = () => {
    for (const t of [tMask, tq, tk, tv, tdo, kvIndex]) t.dispose();
  };
  return { run, dispose };
}

/**
 * Times TF.js attention forward + backward: one warm-up (compiles), then the median of
 * `iters` runs, each awaited through `data()` of every output. Returns the warm-up's result
 * so callers can check it.
 */
export async function benchTfjsAttention(
  tf: Tf,
  shape: TfjsAttentionShape,
  data: { q: Float32Array; k: Float32Array; v: Float32Array; dOut: Float32Array },
  iters = 3,
): Promise<{ ms: number; result: TfjsAttentionResult }> {
  const a = tfjsAttention(tf, shape, data);
  try {
    const result = await a.run();
    const times: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      await a.run();
      times.push(performance.now() - t0);
    }
    return { ms: median(times), result };
  } finally {
    a.dispose();
  }
}
