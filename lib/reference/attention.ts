/**
 * Plain f64 reference of causal grouped-query attention (forward and backward), with the
 * optional sliding window and logit soft-cap of `lib/ops/attention.ts`.
 *
 * Scores s = scale·q_i·k_j are soft-capped (z = c·tanh(s/c)) when `softcap` > 0, masked to
 * the keys j with i − window < j ≤ i (just j ≤ i without a window) and soft-maxed per row.
 * Head h reads kv head ⌊h·KV/H⌋. Written for clarity, not speed: it is the ground truth the
 * GPU kernels are tested against.
 */

/** Options shared by the reference forward and backward. */
export interface AttentionRefOptions {
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  /** Sliding window (0 or undefined: none). */
  window?: number;
  /** Logit soft-cap (0 or undefined: none). */
  softcap?: number;
}

/** True when key j is visible to query i. */
function visible(i: number, j: number, window: number): boolean {
  return j <= i && (window <= 0 || j > i - window);
}

/** Scaled, soft-capped score z of query i (head h) and key j (kv head g), and dz/ds. */
function score(
  q: Float64Array,
  k: Float64Array,
  i: number,
  j: number,
  h: number,
  g: number,
  o: AttentionRefOptions,
): { z: number; dzds: number } {
  const { heads: H, kvHeads: KV, headDim: hd } = o;
  let s = 0;
  for (let d = 0; d < hd; d++) s += q[i * H * hd + h * hd + d] * k[j * KV * hd + g * hd + d];
  s *= o.scale;
  const c = o.softcap ?? 0;
  if (c > 0) {
    const t = Math.tanh(s / c);
    return { z: c * t, dzds: 1 - t * t };
  }
  return { z: s, dzds: 1 };
}

/**
 * Reference forward.
 * @param q (S, H·hd)
 * @param k (S, KV·hd)
 * @param v (S, KV·hd)
 * @returns out (S, H·hd) and lse (H, S), the natural log-sum-exp of each row's scores
 */
export function attentionForwardRef(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  o: AttentionRefOptions,
): { out: Float64Array; lse: Float64Array } {
  const { heads: H, kvHeads: KV, headDim: hd } = o;
  const S = q.length / (H * hd);
  const window = o.window ?? 0;
  const out = new Float64Array(S * H * hd); // (S, H·hd)
  const lse = new Float64Array(H * S); // (H, S)
  const z = new Float64Array(S);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h * KV / H);
    for (let i = 0; i < S; i++) {
      let m = -Infinity;
      for (let j = 0; j <= i; j++) {
        if (!visible(i, j, window)) continue;
        z[j] = score(q, k, i, j, h, g, o).z;
        m = Math.max(m, z[j]);
      }
      let l = 0;
      for (let j = 0; j <= i; j++) {
        if (!visible(i, j, window)) continue;
        const p = Math.exp(z[j] - m);
        l += p;
        for (let d = 0; d < hd; d++) {
          out[i * H * hd + h * hd + d] += p * v[j * KV * hd + g * hd + d];
        }
      }
      for (let d = 0; d < hd; d++) out[i * H * hd + h * hd + d] /= l;
      lse[h * S + i] = m + Math.log(l);
    }
  }
  return { out, lse };
}

/**
 * Reference backward: gradients of a loss L given dOut = ∂L/∂out.
 * @param dOut (S, H·hd)
 * @returns dq (S, H·hd), dk (S, KV·hd), dv (S, KV·hd)
 */
export function attentionBackwardRef(
  dOut: Float64Array,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  o: AttentionRefOptions,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { heads: H, kvHeads: KV, headDim: hd } = o;
  const S = q.length / (H * hd);
  const window = o.window ?? 0;
  const { out, lse } = attentionForwardRef(q, k, v, o);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h * KV / H);
    for (let i = 0; i < S; i++) {
      const qi = i * H * hd + h * hd;
      let D = 0; // rowsum(dO ∘ O)
      for (let d = 0; d < hd; d++) D += dOut[qi + d] * out[qi + d];
      for (let j = 0; j <= i; j++) {
        if (!visible(i, j, window)) continue;
        const kj = j * KV * hd + g * hd;
        const { z, dzds } = score(q, k, i, j, h, g, o);
        const p = Math.exp(z - lse[h * S + i]);
        let dp = 0;
        for (let d = 0; d < hd; d++) {
          dv[kj + d] += p * dOut[qi + d];
          dp += dOut[qi + d] * v[kj + d];
        }
        const ds = p * (dp - D) * dzds * o.scale; // ∂L/∂(q·k)
        for (let d = 0; d < hd; d++) {
          dq[qi + d] += ds * k[kj + d];
          dk[kj + d] += ds * q[qi + d];
        }
      }
    }
  }
  return { dq, dk, dv };
}
