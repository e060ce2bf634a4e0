/**
 * Small figure helpers the experiments share: rounding for tables and summaries, ratios and
 * loss differences that stay `null` where a figure does not exist (the meta device computes
 * no losses and no tokens/s).
 */

/** `x` rounded to `digits` decimals (default 2); `null` stays `null`. */
export function round(x: number, digits?: number): number;
export function round(x: number | null, digits?: number): number | null;
export function round(x: number | null, digits = 2): number | null {
  return x === null ? null : Number(x.toFixed(digits));
}

/** `a / b` rounded to `digits` decimals (default 2); `null` when either is `null`. */
export function ratio(a: number | null, b: number | null, digits = 2): number | null {
  return a === null || b === null ? null : round(a / b, digits);
}

/** The largest of the numbers in `xs`; `null` when there is none. */
export function maxOf(xs: readonly (number | null | undefined)[]): number | null {
  let m: number | null = null;
  for (const x of xs) if (typeof x === "number" && (m === null || x > m)) m = x;
  return m;
}

/**
 * max |aᵢ − bᵢ| over the indices where both are numbers (e.g. two runs' per-step losses);
 * `null` when there is no such index (meta device: no losses).
 */
export function maxAbsDelta(
  a: readonly (number | null)[],
  b: readonly (number | null)[],
): number | null {
  return maxOf(
    a.map((x, i) => x === null || typeof b[i] !== "number" ? null : Math.abs(x - b[i]!)),
  );
}
