/** f64 reference of the rotary position embedding (Hugging Face "rotate_half"). */

/**
 * x (S, H·hd) rotated per head by angle (offset + s)·θ^(−2i/hd) (or its negative with
 * `inverse`): out[i] = x[i]cos − x[i+hd/2]sin, out[i+hd/2] = x[i+hd/2]cos + x[i]sin.
 */
export function ropeRef(
  x: Float64Array,
  S: number,
  heads: number,
  headDim: number,
  theta: number,
  positionOffset = 0,
  inverse = false,
): Float64Array {
  const half = headDim / 2;
  const out = new Float64Array(x.length); // (S, H·hd)
  for (let s = 0; s < S; s++) {
    const pos = positionOffset + s;
    for (let i = 0; i < half; i++) {
      const a = (inverse ? -1 : 1) * pos * Math.pow(theta, (-2 * i) / headDim);
      const c = Math.cos(a), sn = Math.sin(a);
      for (let h = 0; h < heads; h++) {
        const idx = s * heads * headDim + h * headDim + i;
        const x1 = x[idx], x2 = x[idx + half];
        out[idx] = x1 * c - x2 * sn;
        out[idx + half] = x2 * c + x1 * sn;
      }
    }
  }
  return out;
}
