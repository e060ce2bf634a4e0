/**
 * Small figure helpers the experiments share: rounding for tables and summaries, ratios and
 * loss differences that stay `null` where a figure does not exist (the meta device computes
 * no losses and no tokens/s), and a metric row of a step driver's result.
 */

import type { Json, MetricRow } from "../report/json.ts";
import type { RunStepsResult } from "../train/run_steps.ts";

/** `x` rounded to `digits` decimals (default 2). */
export function round(x: number, digits?: number): number;
/** `x` rounded to `digits` decimals (default 2); `null` stays `null`. */
export function round(x: number | null, digits?: number): number | null;
export function round(x: number | null, digits = 2): number | null {
  return x === null ? null : Number(x.toFixed(digits));
}

/** `bytes` in MiB (2^20 bytes), rounded to `digits` decimals (default 2). */
export function mib(bytes: number, digits = 2): number {
  return round(bytes / 2 ** 20, digits);
}

/** `a / b` rounded to `digits` decimals (default 2); `null` when either is `null` or b is 0. */
export function ratio(a: number | null, b: number | null, digits = 2): number | null {
  return a === null || b === null || b === 0 ? null : round(a / b, digits);
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

/**
 * The figures of a `runSteps` result as one metric row: policy, peak and its phase, the peak
 * host bytes (offloaded checkpoints, outside the peak), tokens/s, every step's ms with the
 * timed steps' min / median / max, the M run per part, the losses, leaked bytes, and the bytes
 * of each tag at the peak (`<tag>MiB`). Add the row's `kind` and the sweep's own fields (e.g.
 * `seq`).
 */
export function stepsRow(r: RunStepsResult): MetricRow {
  const tags = Object.entries(r.breakdown).filter(([, b]) => b > 0);
  return {
    policy: r.policy,
    peakBytes: r.peakBytes,
    peakPhase: r.peakPhase,
    reservedBytes: r.reservedBytes,
    hostPeakBytes: r.hostPeakBytes,
    tokensPerSec: round(r.tokensPerSec, 1),
    stepMs: r.steps.map((s) => Math.round(s.ms)),
    stepMsMin: round(r.timing?.minMs ?? null, 1),
    stepMsMedian: round(r.timing?.medianMs ?? null, 1),
    stepMsMax: round(r.timing?.maxMs ?? null, 1),
    mlpChunks: r.chunks.mlp,
    headChunks: r.chunks.head,
    losses: r.losses.map((l) => round(l, 5)),
    leakedBytes: r.leakedBytes,
    ...Object.fromEntries(tags.map(([t, b]) => [`${t}MiB`, mib(b, 3)])),
  };
}

/**
 * `kind: "breakdown"` rows of a step's peak: one per tag holding bytes, each with the phase of
 * the peak (what `stackedPeak({ phase: "phase" })` writes beside each bar) and `extra` fields.
 */
export function breakdownRows(
  r: { breakdown: Record<string, number>; peakPhase: string },
  extra: Record<string, Json>,
): MetricRow[] {
  return Object.entries(r.breakdown).filter(([, b]) => b > 0)
    .map(([tag, bytes]) => ({ kind: "breakdown", ...extra, tag, bytes, phase: r.peakPhase }));
}
