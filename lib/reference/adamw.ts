/** f64 reference of one AdamW step (PyTorch semantics), in place on p, m, v. */

/** Hyper-parameters (as in `adamwUpdate`), with the clip given as host numbers. */
export interface AdamWRefOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
  clip?: { normSq: number; maxNorm: number };
}

/** Updates p, m, v in place with gradient g. */
export function adamwRef(
  p: Float64Array,
  g: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  o: AdamWRefOptions,
): void {
  const scale = o.clip ? Math.min(1, o.clip.maxNorm / (Math.sqrt(o.clip.normSq) + 1e-6)) : 1;
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * scale;
    p[i] -= o.lr * o.weightDecay * p[i];
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
    p[i] -= (o.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + o.eps);
  }
}
