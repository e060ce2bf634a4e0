/**
 * Throughput that means something on a shared machine: the policies compared are run
 * round-robin over repeats (round r runs every policy once, in an order rotated by r), so a
 * burst of load from elsewhere falls on all of them alike; each policy's tokens/s is then the
 * median of its rounds, with the fastest and slowest round as the error bar.
 */

import type { RunStepsResult } from "../train/run_steps.ts";
import { maxAbsDelta, ratio, round, stepsRow } from "./figures.ts";
import type { MetricRow } from "./define.ts";

/** Median, min and max of some measurements (null ones left out). */
export interface Spread {
  /** The middle measurement (mean of the two middle ones for an even count). */
  median: number;
  /** The lowest measurement. */
  min: number;
  /** The highest measurement. */
  max: number;
  /** Measurements counted. */
  n: number;
}

/** The {@link Spread} of `xs`, or null when none is a number. */
export function spreadOf(xs: readonly (number | null)[]): Spread | null {
  const v = xs.filter((x): x is number => typeof x === "number" && Number.isFinite(x));
  if (v.length === 0) return null;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  const median = s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  return { median, min: s[0], max: s[s.length - 1], n: s.length };
}

/**
 * Runs `fn` for every item `repeats` times, round-robin: round r runs each item once, starting
 * at item r (mod the count), so no item always runs first or last. Returns the results per
 * item, in round order: `out[i][r]`.
 */
export async function roundRobin<T, R>(
  items: readonly T[],
  repeats: number,
  fn: (item: T, round: number) => Promise<R>,
): Promise<R[][]> {
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new Error(`roundRobin: repeats must be an integer ≥ 1, got ${repeats}`);
  }
  const out: R[][] = items.map(() => []);
  for (let r = 0; r < repeats; r++) {
    for (let k = 0; k < items.length; k++) {
      const i = (r + k) % items.length;
      out[i].push(await fn(items[i], r));
    }
  }
  return out;
}

/**
 * One metric row for a policy run in several rounds: {@link stepsRow} of the first round
 * (memory and losses are the same in every round), with `tokensPerSec` the median of the
 * rounds, `tokensPerSecMin` / `tokensPerSecMax` their range and `tokensPerSecRounds` each.
 */
export function roundsRow(rounds: readonly RunStepsResult[]): MetricRow {
  if (rounds.length === 0) throw new Error("roundsRow: no rounds");
  const s = spreadOf(rounds.map((r) => r.tokensPerSec));
  return {
    ...stepsRow(rounds[0]),
    device: rounds[0].device,
    rounds: rounds.length,
    tokensPerSec: round(s?.median ?? null, 1),
    tokensPerSecMin: round(s?.min ?? null, 1),
    tokensPerSecMax: round(s?.max ?? null, 1),
    tokensPerSecRounds: rounds.map((r) => round(r.tokensPerSec, 1)),
  };
}

/** A policy compared by {@link trainRoundRobin}: its key (returned) and label (recorded). */
export interface RoundRobinPolicy<P> {
  /** Its key in the returned points (e.g. "Mst"). */
  key: string;
  /** Its label in the recorded rows and the log (e.g. "MsT + recomputation"). */
  label: string;
  /** What `train` is given. */
  policy: P;
}

/** A (S, policy) point of {@link trainRoundRobin}. */
export interface RoundRobinPoint {
  /** The sequence length S. */
  seq: number;
  /** The policy's key. */
  key: string;
  /** Peak live bytes of a step (the same in every round). */
  peakBytes: number;
  /** Median tokens/s over the rounds (null on the meta device). */
  tokensPerSec: number | null;
  /** The slowest round's tokens/s. */
  lo: number | null;
  /** The fastest round's tokens/s. */
  hi: number | null;
  /** The losses of the first round's steps (null on the meta device). */
  losses: (number | null)[];
  /**
   * Tokens/s over the baseline's in the same round, median over the rounds (paired: a round's
   * load falls on both); null without a baseline or on the meta device.
   */
  ratio: number | null;
  /** The lowest and highest of those per-round ratios. */
  ratioLo: number | null;
  /** See `ratioLo`. */
  ratioHi: number | null;
}

/**
 * At each S (one journaled sweep point each), every policy trained `repeats` times
 * round-robin by `train`; records one `kind: "train"` row per (S, policy) ({@link roundsRow},
 * plus `seq` and, with a `baseline` key, `ratioToBaseline` / `ratioMin` / `ratioMax`: the median
 * and range of the per-round tokens/s ratios to that policy), logs it, and returns the points in
 * S-major order.
 */
export async function trainRoundRobin<P>(
  ctx: {
    sweep<T, R>(
      label: string,
      items: readonly T[],
      fn: (item: T) => Promise<R>,
      opts?: { describe?: (item: T, i: number) => string },
    ): Promise<R[]>;
    record(row: MetricRow): void;
    log(line: string): void;
  },
  seqs: readonly number[],
  policies: readonly RoundRobinPolicy<P>[],
  repeats: number,
  train: (policy: P, seq: number) => Promise<RunStepsResult>,
  baseline?: string,
): Promise<RoundRobinPoint[]> {
  const b = policies.findIndex((p) => p.key === baseline);
  if (baseline !== undefined && b < 0) {
    throw new Error(`trainRoundRobin: no policy with key "${baseline}" for the baseline`);
  }
  const points = await ctx.sweep("train", seqs, async (seq) => {
    const runs = await roundRobin(policies, repeats, (p) => train(p.policy, seq));
    return policies.map(({ key, label }, i): RoundRobinPoint => {
      const paired = b < 0 ? null : spreadOf(
        runs[i].map((r, k) => {
          const [x, y] = [r.tokensPerSec, runs[b][k].tokensPerSec];
          return x === null || y === null || y === 0 ? null : x / y;
        }),
      );
      const [ratio, ratioLo, ratioHi] = [paired?.median, paired?.min, paired?.max]
        .map((v) => round(v ?? null, 3));
      const row = roundsRow(runs[i]);
      const vs = b < 0 ? {} : { ratioToBaseline: ratio, ratioMin: ratioLo, ratioMax: ratioHi };
      ctx.record({ kind: "train", seq, ...row, ...vs });
      const { peakBytes, losses, device } = runs[i][0];
      const [tokensPerSec, lo, hi] = [row.tokensPerSec, row.tokensPerSecMin, row.tokensPerSecMax]
        .map((v) => typeof v === "number" ? v : null);
      const mib = (peakBytes / 2 ** 20).toFixed(2);
      const done = device === "meta" ? "" : `, ${tokensPerSec} tok/s (rounds ${lo}–${hi}), ` +
        `losses ${losses.map((l) => l?.toFixed(4)).join(" ")}`;
      ctx.log(`   S=${seq} ${label}: peak ${mib} MiB${done}`);
      return { seq, key, peakBytes, tokensPerSec, lo, hi, losses, ratio, ratioLo, ratioHi };
    });
  }, { describe: (seq) => `S=${seq} ${policies.length} policies × ${repeats} rounds` });
  return points.flat();
}

/** The columns of {@link roundRobinTable}'s rows. */
export const ROUND_ROBIN_COLUMNS = [
  "S",
  "policy",
  "peak (MiB)",
  "tok/s (median)",
  "min–max",
  "× baseline (per round)",
  "max |Δloss| vs baseline",
];

/**
 * Table rows of {@link trainRoundRobin}'s points, one per (S, policy): peak MiB, median
 * tokens/s, the rounds' range, the ratio to the baseline (the median of the per-round ratios and
 * their range when the points have them, else the ratio of the medians), and the largest loss
 * difference from the baseline (exponent form; "—" on the meta device).
 */
export function roundRobinTable(
  points: readonly RoundRobinPoint[],
  policies: readonly { key: string; label: string }[],
  baselineKey: string,
): (string | number | null)[][] {
  const at = (key: string, seq: number) => points.find((p) => p.key === key && p.seq === seq)!;
  const seqs = [...new Set(points.map((p) => p.seq))];
  return seqs.flatMap((seq) =>
    policies.map(({ key, label }) => {
      const [r, b] = [at(key, seq), at(baselineKey, seq)];
      const d = maxAbsDelta(b.losses, r.losses);
      return [
        seq,
        label,
        round(r.peakBytes / 2 ** 20, 2),
        r.tokensPerSec,
        r.lo === null ? "—" : `${r.lo}–${r.hi}`,
        r.ratio !== null
          ? `${r.ratio} (${r.ratioLo}–${r.ratioHi})`
          : ratio(r.tokensPerSec, b.tokensPerSec, 3) ?? "—",
        d === null ? "—" : d === 0 ? "0" : d.toExponential(2),
      ];
    })
  );
}
