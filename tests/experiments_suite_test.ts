/**
 * The shipped experiments: all are listed and load (defaults and `--quick` overrides
 * valid), and cheap variants run end to end in process — max-seq-device, chunk-ablation, lora-long,
 * families-long and scale-out on the meta device (memory only), convergence on WebGPU with a few steps at a
 * tiny S — checking their key figures against their own records. Also the figure helpers,
 * the `someOf` / `presets` rules and `metricVsSeq`'s highlighted points.
 * (`llama3-long --quick --device meta` runs through the CLI in `experiments_test.ts`.)
 */

import assert from "node:assert/strict";
import {
  getPreset,
  maxAbsDelta,
  maxOf,
  MetaDevice,
  type MetricRow,
  POLICIES,
  presets,
  ratio,
  readRunRecords,
  round,
  runExperiment,
  runSteps,
  someOf,
  stepsRow,
} from "../mod.ts";
import { listExperiments } from "../lib/experiments/registry.ts";
import { assertReportLayout } from "../lib/testing/report_layout.ts";
import { resolveExperimentConfig } from "../lib/experiments/config.ts";

const SHIPPED = [
  "chunk-ablation",
  "convergence",
  "families-long",
  "llama3-long",
  "lora-long",
  "max-seq-device",
  "scale-out",
];

/** Runs an experiment in process into a fresh temporary directory; returns its records. */
async function run(name: string, device: "webgpu" | "meta", set: string[] = []) {
  const out = await Deno.makeTempDir({ prefix: `${name}-` });
  try {
    const { dir } = await runExperiment(name, {
      quick: true,
      device,
      set,
      out: `${out}/run`,
      print: () => {},
      progress: false,
    });
    const rec = await readRunRecords(dir);
    const html = await Deno.readTextFile(`${dir}/report.html`);
    // the report as a reader sees it: Chromium at 1280 px (lib/testing/report_layout.ts)
    await assertReportLayout(`${dir}/report.html`, `${name} --quick on ${device}`);
    return { rec, html, figures: rec.summary.figures as Record<string, unknown> };
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

const rowsOf = (rows: readonly MetricRow[], kind: string) => rows.filter((r) => r.kind === kind);

Deno.test("the shipped experiments are listed and load, each with a --quick variant", async () => {
  const { experiments: all, skipped } = await listExperiments();
  assert.deepEqual(skipped, []);
  assert.deepEqual(all.map((e) => e.name).filter((n) => SHIPPED.includes(n)), SHIPPED);
  for (const e of all.filter((e) => SHIPPED.includes(e.name))) {
    assert.ok(e.description.length > 20, e.name);
    assert.ok(e.quick && Object.keys(e.quick).length > 0, `${e.name} has a --quick variant`);
  }
});

Deno.test("max-seq-device --quick on meta: S_max per policy confirmed, MsT ≥ 8× standard, offload longer", async () => {
  const { rec, figures } = await run("max-seq-device", "meta");
  const maxSeq = figures.maxSeq as Record<string, number>;
  assert.ok(maxSeq.standard < maxSeq.checkpoint, JSON.stringify(maxSeq));
  assert.ok(maxSeq.checkpoint < maxSeq.mst && maxSeq.mst <= maxSeq.mstOib);
  assert.equal(figures.maxSeqRatio, round(maxSeq.mst / maxSeq.standard));
  assert.ok((figures.maxSeqRatio as number) >= 8);
  // checkpoint offload: the block inputs leave the device, so a longer S fits the same budget
  assert.ok(maxSeq.mstOffload > maxSeq.mst, JSON.stringify(maxSeq));
  assert.equal(figures.confirmed, true);
  const points = rowsOf(rec.metrics, "max-seq");
  assert.equal(points.length, 5);
  const off = points.find((p) => p.policy === "MsT + recomputation + checkpoint offload")!;
  const tiny = getPreset("llama3-tiny"); // each block's (S, d) f32 input on the host
  assert.equal(off.hostBytes, tiny.layers * maxSeq.mstOffload * tiny.hidden * 4);
  for (const p of points) {
    assert.equal(p.fits, true);
    assert.match(String(p.oom), /^(forward|backward|optimizer|other) \(\w+\)$/);
    // the device's peak at S_max is the planner's, byte for byte (same allocator, same code)
    const tags = rowsOf(rec.metrics, "breakdown").filter((b) => b.policy === p.policy);
    assert.equal(tags.reduce((a, b) => a + (b.bytes as number), 0), p.plannedPeakBytes);
  }
  assert.deepEqual(rec.charts.map((c) => c.name), ["max-seq", "peak-at-max-seq"]);
});

Deno.test("chunk-ablation --quick on meta: knees from the records, auto marked", async () => {
  const { rec, figures } = await run("chunk-ablation", "meta", ["ms=1,2,8,32"]);
  const sweeps = figures.sweeps as Record<string, Record<string, number>>;
  assert.deepEqual(Object.keys(sweeps), ["meta head S=1024", "meta (llama3-8b) head S=61440"]);
  for (const kind of ["train", "plan"]) {
    const rows = rowsOf(rec.metrics, kind);
    assert.deepEqual(rows.map((r) => r.requested), [1, 2, 8, 32, "auto"]);
    const swept = rows.filter((r) => !r.auto);
    const min = Math.min(...swept.map((r) => r.peakBytes as number));
    const knee = swept.find((r) => (r.peakBytes as number) <= min * 1.05)!;
    const auto = rows.find((r) => r.auto)!;
    const s = sweeps[`${rows[0].on} head S=${rows[0].seq}`];
    assert.equal(s.kneeM, knee.M);
    assert.equal(s.autoM, auto.M);
    assert.ok(typeof auto.M === "number" && auto.M >= 1, "auto resolved to a number");
    // M=1 holds the whole (S, V) logits: more chunks pay, up to the knee
    assert.ok((swept[0].peakBytes as number) > min * 1.05);
  }
  const chart = rec.charts.find((c) => c.name === "peak-vs-m")!;
  assert.match(JSON.stringify(chart.spec), /"shape":"diamond"/);
});

Deno.test("scale-out --quick on meta: max S grows with ZeRO-3 and Ulysses; ALST's points beside ours", async () => {
  const { rec, figures, html } = await run("scale-out", "meta");
  const maxSeq = figures.maxSeq as Record<string, Record<string, number>>;
  const at = (series: string, n: number) => maxSeq[series][String(n)];
  const [mst, off, z3, sp] = [
    "MsT + recomputation",
    "+ checkpoint offload",
    "+ ZeRO-3",
    "+ Ulysses SP (K = N)",
  ];
  for (const n of [1, 2]) {
    assert.ok(at(mst, n) > 0 && at(mst, n) < at(off, n), JSON.stringify(maxSeq));
    // ZeRO-3 on one GPU only adds its buffers (fits are judged on the device's reserve)
    assert.ok(n === 1 ? at(z3, n) <= at(off, n) : at(off, n) <= at(z3, n));
    assert.ok(at(z3, n) <= at(sp, n));
  }
  assert.equal(at(mst, 2), at(mst, 1), "data parallelism alone does not lengthen a sequence");
  assert.ok(at(z3, 2) > at(z3, 1) && at(sp, 2) > at(z3, 2));
  const rows = rowsOf(rec.metrics, "max-seq");
  assert.equal(rows.length, 4 * 2 + 3);
  assert.deepEqual(
    rows.filter((r) => r.alst).map((r) => [r.gpus, r.maxSeq]),
    [[1, 500000], [8, 3700000], [32, 15000000]],
  );
  for (const r of rows.filter((r) => !r.alst)) {
    assert.ok(
      (r.maxSeq as number) %
          (32768 * (String(r.series).includes("Ulysses") ? r.gpus as number : 1)) === 0,
    );
    assert.match(String(r.limitedBy), /^(memory|reserve|binding|index)$/);
  }
  assert.equal(figures.anchorsWithin, null, "--quick skips planning ALST's setups");
  assert.match(html, /<svg/);
  assert.deepEqual(rec.charts.map((c) => c.name), ["max-seq-vs-gpus"]);
});

Deno.test("families-long --quick on meta (one family): the paper's baselines vs MsT", async () => {
  const { rec, figures, html } = await run("families-long", "meta", [
    "models=mistral-7b",
    "resolution=8192",
    "seqs=64,256",
    "steps=1",
  ]);
  const m = (figures.maxSeq as Record<string, Record<string, number>>)["mistral-7b"];
  assert.ok(m.hfStandard < m.hfCheckpoint && m.hfCheckpoint < m.mst && m.mst <= m.mstOib);
  assert.ok((figures.ratioMstOverStandardHf as Record<string, number>)["mistral-7b"] > 8);
  assert.equal(figures.maxAbsDeltaLoss, null); // no losses on meta
  const train = rowsOf(rec.metrics, "train");
  assert.equal(train.length, 4);
  const peak = (seq: number, policy: string) =>
    train.find((r) => r.seq === seq && String(r.policy).startsWith(policy))!.peakBytes as number;
  assert.ok(peak(256, "MsT") < peak(256, "standard"));
  assert.deepEqual(rec.charts.map((c) => c.name), ["max-seq", "tiny-peak"]);
  assert.match(html, /12–24× longer|84K with MsT/);
});

Deno.test("lora-long --quick on meta: LoRA and QLoRA reach longer S than full fine-tuning; only QLoRA fits 70B", async () => {
  const { rec, figures, html } = await run("lora-long", "meta");
  const m = figures.maxSeq as Record<string, Record<string, number>>;
  const e = m["llama3-8b"], big = m["llama3.3-70b"];
  assert.ok(e["full/checkpoint"] < e["full/mst"], JSON.stringify(e));
  assert.ok(e["full/mst"] < e["lora/mst"] && e["lora/mst"] <= e["qlora/mst"], JSON.stringify(e));
  assert.ok(e["lora/checkpoint"] < e["lora/mst"], JSON.stringify(e));
  // 70B: bf16 weights alone (≈141 GB) exceed 80 GiB; the NF4 base (≈37 GB) leaves room
  assert.equal(big["full/mst"], 0);
  assert.equal(big["lora/mst"], 0);
  assert.ok(big["qlora/mst"] > 0, JSON.stringify(big));
  const maxRows = rowsOf(rec.metrics, "max-seq");
  assert.equal(maxRows.length, 2 * 3 * 2);
  const tags = rowsOf(rec.metrics, "breakdown");
  const bytesOf = (policy: RegExp, tag: string) =>
    tags.filter((r) => policy.test(String(r.policy)) && r.tag === tag)
      .reduce((a, r) => a + (r.bytes as number), 0);
  // the NF4 projections (≈4.127 bits) beside the bf16 embedding and head
  assert.ok(bytesOf(/^QLoRA/, "weights") < bytesOf(/^LoRA/, "weights") / 2.5);
  assert.ok(bytesOf(/^LoRA/, "optimizer") < bytesOf(/^MsT/, "optimizer") / 50);
  const tiny = figures.tiny as { seq: number; peakBytes: number };
  assert.ok(tiny.seq >= 64 && tiny.peakBytes <= 8 * 2 ** 20, JSON.stringify(tiny));
  assert.equal(rowsOf(rec.metrics, "train").length, 2);
  assert.deepEqual(rec.charts.map((c) => c.name), ["max-seq", "breakdown", "tiny-loss"]);
  assert.match(html, /QLoRA \/ full/);
});

Deno.test("convergence on WebGPU (a few steps): standard and MsT losses coincide; f16 beside", async () => {
  const { rec, figures } = await run("convergence", "webgpu", [
    "presets=llama3-tiny",
    "seq=64",
    "steps=4",
    "evalEvery=2",
    "evalBatches=1",
  ]);
  const delta = figures.maxAbsDeltaLoss as number;
  assert.ok(typeof delta === "number" && delta <= 1e-4, `maxAbsDeltaLoss ${delta}`);
  const val = rowsOf(rec.metrics, "validation");
  assert.deepEqual(val.map((r) => r.step), [0, 2, 4, 0, 2, 4, 0, 2, 4]);
  const train = rowsOf(rec.metrics, "train");
  assert.equal(train.length, 12);
  const [a, b, h] = [train.slice(0, 4), train.slice(4, 8), train.slice(8)]
    .map((l) => l.map((r) => r.loss as number));
  assert.equal(delta, maxAbsDelta(a, b));
  assert.ok(a[3] < a[0], "the loss goes down");
  // The mixed-precision (f16) curve: the same run up to f16 rounding.
  assert.equal(train[8].policy, "standard [f16]");
  const d16 = figures.maxAbsDeltaLossF16 as number;
  assert.equal(d16, maxAbsDelta(a, h));
  assert.ok(d16 > 0 && d16 < 0.02 * a[0], `maxAbsDeltaLossF16 ${d16}`);
  assert.deepEqual(rec.charts.map((c) => c.name), ["train-llama3-tiny", "validation-llama3-tiny"]);
});

Deno.test("figure helpers: null where a figure does not exist; a step driver's row", async () => {
  assert.equal(maxAbsDelta([1, null, 3], [1.5, 2, 2]), 1);
  assert.equal(maxAbsDelta([null], [1]), null);
  assert.equal(maxOf([null, 2, undefined, -1]), 2);
  assert.equal(maxOf([]), null);
  assert.equal(ratio(3, 2), 1.5);
  assert.equal(ratio(1, 0), null);
  assert.equal(ratio(null, 2), null);
  assert.equal(round(1.23456, 3), 1.235);
  const cfg = getPreset("llama3-tiny");
  const ids = Int32Array.from({ length: 64 }, (_, i) => i);
  const r = await runSteps(new MetaDevice(), cfg, POLICIES.mst, { ids, targets: ids }, {
    steps: 2,
  });
  const row = stepsRow(r);
  assert.equal(row.policy, "MsT + recomputation");
  assert.equal(row.peakBytes, r.peakBytes);
  assert.equal(row.tokensPerSec, null);
  assert.deepEqual(row.losses, [null, null]);
  assert.equal(row.headChunks, r.chunks.head);
  assert.equal(row.weightsMiB, round(r.breakdown.weights / 2 ** 20, 3));
});

Deno.test("someOf / presets rules: lists of allowed names", () => {
  const defaults = { models: someOf(["a"], ["a", "b", "c"]), tiny: presets(["llama3-tiny"]) };
  assert.deepEqual(resolveExperimentConfig(defaults, { set: ["models=c,a"] }).models, ["c", "a"]);
  assert.deepEqual(
    resolveExperimentConfig(defaults, { set: ["tiny=[gemma2-tiny, llama2-tiny]"] }).tiny,
    ["gemma2-tiny", "llama2-tiny"],
  );
  assert.throws(
    () => resolveExperimentConfig(defaults, { set: ["models=a,d"] }),
    /"models" must be a non-empty list, each one of a, b, c/,
  );
  assert.throws(
    () => resolveExperimentConfig(defaults, { yaml: "tiny: [llama9-tiny]" }),
    /"tiny" must be a non-empty list, each one of .*llama3-tiny/,
  );
});
