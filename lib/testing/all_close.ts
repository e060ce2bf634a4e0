/**
 * `assertAllClose`: elementwise |actual − expected| ≤ atol + rtol·|expected|, with a report
 * of the maximum errors and the first mismatches.
 */

import { AssertionError } from "node:assert";
import { rng } from "../util/random.ts";

export { rng };

/** Tolerances. */
export interface Tolerance {
  atol?: number;
  rtol?: number;
}

/** Compares two arrays elementwise; throws with max error and first mismatches. */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-4 }: Tolerance = {},
  what = "values",
): void {
  if (actual.length !== expected.length) {
    throw new AssertionError({
      message: `${what}: length ${actual.length} != expected ${expected.length}`,
    });
  }
  let maxAbs = 0;
  let maxRel = 0;
  const bad: string[] = [];
  let nBad = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const err = Math.abs(a - e);
    if (Number.isNaN(a) !== Number.isNaN(e) || !(err <= atol + rtol * Math.abs(e))) {
      if (!(Number.isNaN(a) && Number.isNaN(e))) {
        nBad++;
        if (bad.length < 8) {
          bad.push(`  [${i}] actual ${a} expected ${e} (|err| ${err.toExponential(2)})`);
        }
      }
    }
    if (Number.isFinite(err)) {
      maxAbs = Math.max(maxAbs, err);
      maxRel = Math.max(maxRel, err / Math.max(Math.abs(e), 1e-30));
    }
  }
  if (nBad > 0) {
    throw new AssertionError({
      message:
        `${what}: ${nBad} of ${actual.length} elements differ beyond atol=${atol} rtol=${rtol} ` +
        `(max abs err ${maxAbs.toExponential(3)}, max rel err ${maxRel.toExponential(3)}):\n${
          bad.join("\n")
        }`,
    });
  }
}

/** Largest |a − b| / max(|b|, floor) over the arrays (for reporting). */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor));
  }
  return m;
}

/** `n` uniform values in [-scale, scale) from a seeded generator. */
export function randomArray(n: number, seed: number, scale = 1): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

/**
 * Central finite differences of a scalar function f at x: df/dx_i ≈ (f(x+h) − f(x−h)) / 2h,
 * for each index in `indices` (default all).
 */
export function finiteDifferences(
  f: (x: Float64Array) => number,
  x: Float64Array,
  h = 1e-5,
  indices?: number[],
): Float64Array {
  const g = new Float64Array(x.length);
  for (const i of indices ?? x.keys()) {
    const keep = x[i];
    x[i] = keep + h;
    const fp = f(x);
    x[i] = keep - h;
    const fm = f(x);
    x[i] = keep;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}
