/**
 * Throughput on a shared machine (lib/experiments/throughput.ts): policies run round-robin with
 * the order rotated each round, tokens/s as the median of the rounds with min/max, and ratios to
 * the baseline paired per round — a burst of load in one round moves both sides of its ratio.
 */

import assert from "node:assert/strict";
import {
  roundRobin,
  roundRobinTable,
  roundsRow,
  spreadOf,
  trainRoundRobin,
} from "../lib/experiments/throughput.ts";
import type { MetricRow } from "../lib/report/json.ts";
import type { RunStepsResult } from "../lib/train/run_steps.ts";

const result = (tokensPerSec: number | null, peakBytes = 1000): RunStepsResult => ({
  policy: "p",
  device: tokensPerSec === null ? "meta" : "webgpu",
  steps: [],
  losses: [2.5, 2.25],
  peakBytes,
  breakdown: { weights: peakBytes },
  peakPhase: "backward",
  phasePeaks: {},
  largestTag: "weights",
  reservedBytes: peakBytes,
  hostPeakBytes: 0,
  skippedSteps: [],
  tokensPerSec,
  timing: null,
  chunks: { mlp: null, head: null },
  warnings: [],
  leakedBytes: 0,
});

Deno.test("roundRobin rotates the order each round; spreadOf gives median, min, max", async () => {
  const order: string[] = [];
  const out = await roundRobin(["a", "b", "c"], 3, (x, r) => {
    order.push(`${x}${r}`);
    return Promise.resolve(`${x}${r}`);
  });
  assert.deepEqual(order, ["a0", "b0", "c0", "b1", "c1", "a1", "c2", "a2", "b2"]);
  assert.deepEqual(out, [["a0", "a1", "a2"], ["b0", "b1", "b2"], ["c0", "c1", "c2"]]);
  await assert.rejects(roundRobin(["a"], 0, () => Promise.resolve(1)), /repeats must be/);
  assert.deepEqual(spreadOf([3, null, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  assert.deepEqual(spreadOf([4, 1]), { median: 2.5, min: 1, max: 4, n: 2 });
  assert.equal(spreadOf([null]), null);
  const row = roundsRow([result(100), result(300), result(200)]);
  assert.deepEqual(
    [row.tokensPerSec, row.tokensPerSecMin, row.tokensPerSecMax, row.rounds],
    [200, 100, 300, 3],
  );
  assert.deepEqual(row.tokensPerSecRounds, [100, 300, 200]);
});

Deno.test("trainRoundRobin records medians and ratios paired per round", async () => {
  // round 1 is loaded: both policies are 3× slower in it; paired ratios stay at 0.5
  const speed: Record<string, number[]> = { std: [1000, 333, 1000], mst: [500, 166.5, 500] };
  const calls: Record<string, number> = { std: 0, mst: 0 };
  const rows: MetricRow[] = [];
  const ctx = {
    sweep: async <T, R>(_: string, items: readonly T[], fn: (item: T) => Promise<R>) => {
      const out: R[] = [];
      for (const item of items) out.push(await fn(item));
      return out;
    },
    record: (r: MetricRow) => rows.push(r),
    log: () => {},
  };
  const policies = [
    { key: "Std", label: "standard", policy: "std" },
    { key: "Mst", label: "MsT + recomputation", policy: "mst" },
  ];
  const points = await trainRoundRobin(ctx, [256], policies, 3, (p) => {
    return Promise.resolve(result(speed[p][calls[p]++], p === "std" ? 2000 : 1000));
  }, "Std");
  const mst = points.find((p) => p.key === "Mst")!;
  assert.equal(mst.ratio, 0.5);
  assert.deepEqual([mst.ratioLo, mst.ratioHi], [0.5, 0.5]);
  assert.deepEqual([mst.tokensPerSec, mst.lo, mst.hi], [500, 166.5, 500]);
  assert.equal(rows.length, 2);
  assert.equal(rows[1].ratioToBaseline, 0.5);
  assert.equal(rows[1].seq, 256);
  const table = roundRobinTable(points, policies, "Std");
  assert.deepEqual(table[1].slice(0, 6), [
    256,
    "MsT + recomputation",
    0,
    500,
    "166.5–500",
    "0.5 (0.5–0.5)",
  ]);
  await assert.rejects(
    trainRoundRobin(ctx, [256], policies, 1, () => Promise.resolve(result(1)), "Nope"),
    /no policy with key "Nope"/,
  );
});
