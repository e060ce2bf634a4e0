/** f64 reference of RMSNorm and its backward. */

/** y (S, d) = x · rstd · w' with w' = w or 1 + w; rstd (S) = 1/√(mean(x²) + eps). */
export function rmsnormForwardRef(
  x: Float64Array,
  w: Float64Array,
  S: number,
  d: number,
  eps: number,
  unitOffset = false,
): { y: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(S * d); // (S, d)
  const rstd = new Float64Array(S); // (S)
  const off = unitOffset ? 1 : 0;
  for (let s = 0; s < S; s++) {
    let ss = 0;
    for (let c = 0; c < d; c++) ss += x[s * d + c] ** 2;
    const r = 1 / Math.sqrt(ss / d + eps);
    rstd[s] = r;
    for (let c = 0; c < d; c++) y[s * d + c] = x[s * d + c] * r * (w[c] + off);
  }
  return { y, rstd };
}

/** Gradients of Σ dy·y with respect to x (S, d) and w (d) (dw not accumulated). */
export function rmsnormBackwardRef(
  dy: Float64Array,
  x: Float64Array,
  w: Float64Array,
  S: number,
  d: number,
  eps: number,
  unitOffset = false,
): { dx: Float64Array; dw: Float64Array } {
  const { rstd } = rmsnormForwardRef(x, w, S, d, eps, unitOffset);
  const dx = new Float64Array(S * d); // (S, d)
  const dw = new Float64Array(d); // (d)
  const off = unitOffset ? 1 : 0;
  for (let s = 0; s < S; s++) {
    const r = rstd[s];
    let dot = 0;
    for (let c = 0; c < d; c++) dot += dy[s * d + c] * (w[c] + off) * x[s * d + c];
    for (let c = 0; c < d; c++) {
      const i = s * d + c;
      dx[i] = r * (w[c] + off) * dy[i] - x[i] * r ** 3 * dot / d;
      dw[c] += dy[i] * x[i] * r;
    }
  }
  return { dx, dw };
}
