/**
 * Charts bound to records: every helper of `lib/report/charts.ts` renders to SVG from sample
 * rows (byte axes in MiB/GiB, the reference labels, one colour per policy on every chart,
 * wrapped titles); a run stores chart definitions in `charts.json` and `deno task report`
 * re-renders `charts/` from them and `metrics.jsonl` — also after a helper's style changes,
 * and for a run directory from before `charts.json`; a kind with no rows is refused by
 * `ctx.chart` and drawn as an empty-state chart at report time.
 */

import assert from "node:assert/strict";
import { defineExperiment } from "../lib/experiments/define.ts";
import { runExperiment } from "../lib/experiments/run.ts";
import { timelineRows } from "../lib/experiments/timeline.ts";
import {
  barsWithReference,
  CHART_HELPERS,
  chartSpec,
  downsampleMinMax,
  lossCurves,
  memoryTimeline,
  metricVsSeq,
  stackedPeak,
} from "../lib/report/charts.ts";
import {
  chartFromRows,
  makeChartDef,
  parseChartDefs,
  resolveChart,
} from "../lib/report/chart_defs.ts";
import { POLICY_COLORS, seriesColors, wrapText } from "../lib/report/chart_style.ts";
import { readRunRecords } from "../lib/report/records.ts";
import type { MetricRow, VegaLiteSpec } from "../lib/report/json.ts";
import { renderSvg } from "../lib/report/render_svg.ts";
import { rerenderReport } from "../lib/report/write_report.ts";
import type { MemoryEvent } from "../lib/device/allocator.ts";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const POLICIES = ["standard", "MsT + recomputation"];

/** The text of every `<text>` element of an SVG (lines of one label joined by a space). */
function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([\s\S]*?)<\/text>/g)].map((m) =>
    m[1].replace(/<\/tspan><tspan[^>]*>/g, " ").replace(/<[^>]*>/g, "")
      .replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&")
  );
}

/** The data values bound to a finished spec. */
function boundRows(spec: VegaLiteSpec): MetricRow[] {
  return (spec.data as { values: MetricRow[] }).values;
}

async function render(spec: VegaLiteSpec, name: string): Promise<string> {
  const svg = await renderSvg(spec, name);
  assert.match(svg, /^<svg [\s\S]*<\/svg>\s*$/, `${name}: not an SVG document`);
  return svg;
}

const maxSeqRows: MetricRow[] = [
  { kind: "max-seq", policy: "standard (HF head)", maxSeq: 5778, paper: 5000, paperLabel: "≈5K" },
  { kind: "max-seq", policy: "standard", maxSeq: 7561, paper: null, paperLabel: null },
  {
    kind: "max-seq",
    policy: "MsT + recomputation + optimizer-in-backward",
    maxSeq: 113879,
    paper: 60000,
    paperLabel: "60K",
  },
];
const breakdownRows: MetricRow[] = ["standard", "MsT + recomputation"].flatMap((policy, i) =>
  [["weights", 15], ["optimizer", 30], ["activations", i ? 2 : 35]].map(([tag, g]) => ({
    kind: "breakdown",
    policy,
    tag,
    bytes: (g as number) * GiB,
  }))
);
const trainRows: MetricRow[] = [128, 256, 512].flatMap((seq) =>
  POLICIES.map((policy, i) => ({
    kind: "train",
    seq,
    policy,
    peakBytes: Math.round(seq * (i ? 0.02 : 0.05) * MiB),
    tokensPerSec: 1000 - seq * (i + 1) * 0.5,
  }))
);
const lossRows: MetricRow[] = POLICIES.flatMap((policy) =>
  [1, 2, 3, 4].map((step) => ({ kind: "loss", policy, step, loss: 8 - step / 2 }))
);
const events = (n: number, peakAt: number): MemoryEvent[] =>
  Array.from({ length: n }, (_, i) => ({
    seq: i,
    kind: "alloc",
    id: i,
    bytes: 1,
    tag: "activations",
    name: "t",
    phase: i < n / 2 ? "forward" : i < n - 10 ? "backward" : "",
    liveBytes: i === peakAt ? 40 * MiB : (4 + (i * 37) % 11) * MiB,
  }));
const timeline: MetricRow[] = POLICIES.flatMap((policy, i) =>
  timelineRows(events(1000 + i * 200, 777), { policy })
);

Deno.test("every chart helper renders to SVG from sample rows", async () => {
  const bars = await render(
    chartFromRows(
      barsWithReference({
        title: "llama3-8b: longest trainable sequence in 80 GiB",
        x: "policy",
        y: "maxSeq",
        reference: "paper",
        referenceLabel: "paperLabel",
        referenceName: "paper",
        referenceTitle: "the paper (1× A100 80 GB)",
      }),
      maxSeqRows,
    ),
    "bars",
  );
  const barText = svgTexts(bars);
  for (const t of ["5,778", "paper ≈5K", "113,879", "paper 60K", "7,561"]) {
    assert.ok(barText.includes(t), `bars: no label "${t}" in ${barText.join(" | ")}`);
  }
  assert.ok(barText.includes("MsT + recomputation + optimizer-in-backward"), "wrapped x label");
  assert.equal(barText.filter((t) => t.startsWith("paper ")).length, 2, "a reference per paper");

  // grouped (a bar per policy within each family), log axis: every bar is drawn above the axis
  const grouped = chartFromRows(
    barsWithReference({
      title: "max S per family",
      x: "family",
      group: "policy",
      y: "maxSeq",
      reference: "paper",
      yLog: true,
    }),
    ["a", "b"].flatMap((family, i) =>
      POLICIES.map((policy, j) => ({
        family,
        policy,
        maxSeq: 5000 * (i + 1) * (j * 9 + 1),
        paper: i + j === 0 ? 84000 : null,
      }))
    ),
  );
  const groupedSvg = await render(grouped, "grouped");
  const groupedText = svgTexts(groupedSvg);
  // side by side, each bar has one vertical label: its value, and the reference beside it
  for (const t of ["5,000 · ref 84,000", "10,000", "50,000", "100,000", ...POLICIES]) {
    assert.ok(groupedText.includes(t), `grouped: no "${t}" in ${groupedText.join(" | ")}`);
  }
  assert.match(groupedSvg, /rotate\(-90\)|rotate\(270\)/);
  const barHeights = [
    ...groupedSvg.matchAll(/aria-roledescription="bar" d="M[^h]*h[\d.-]+v([\d.-]+)/g),
  ]
    .map((m) => Number(m[1]));
  assert.equal(barHeights.length, 4, `bars: ${barHeights}`);
  assert.ok(barHeights.every((h) => h > 5), `bars too short on the log axis: ${barHeights}`);

  const stack = await render(
    chartFromRows(
      stackedPeak({
        title: "peak by tag",
        y: "policy",
        stack: "tag",
        x: "bytes",
        budget: 80 * GiB,
      }),
      breakdownRows,
    ),
    "stack",
  );
  const stackText = svgTexts(stack);
  for (const t of ["80 GiB", "80 GiB", "budget 80 GiB", "47 GiB", "weights", "activations"]) {
    assert.ok(stackText.includes(t), `stack: no "${t}" in ${stackText.join(" | ")}`);
  }
  assert.ok(!stackText.includes("checkpoints"), "the legend lists only the tags drawn");

  const peak = await render(
    chartFromRows(
      metricVsSeq({ title: "peak vs S", y: "peakBytes", yFormat: "bytes", yLog: true }),
      trainRows,
    ),
    "peak",
  );
  const peakText = svgTexts(peak);
  for (const t of ["128", "256", "512", "10 MiB", "standard", "MsT + recomputation"]) {
    assert.ok(peakText.includes(t), `peak: no "${t}" in ${peakText.join(" | ")}`);
  }
  assert.ok(!peakText.includes("30 MiB"), "log axis: labels only at 1, 2, 5 × 10^k");

  const loss = await render(
    chartFromRows(lossCurves({ title: "loss per step", baseline: "standard" }), lossRows),
    "loss",
  );
  assert.ok(svgTexts(loss).includes("step"));
  // the baseline is drawn wide and pale underneath; each curve has its own dash and shape
  assert.match(loss, /stroke-width="7"/);
  assert.match(loss, /stroke-dasharray="6,3"/);
  const shapes = new Set(
    [...loss.matchAll(/aria-roledescription="point"[^>]* d="([^"]+)"/g)].map((m) => m[1]),
  );
  assert.ok(shapes.size >= 2, "each series has its own point shape");

  const tl = await render(
    chartFromRows(memoryTimeline({ title: "a step", order: POLICIES, maxPoints: 200 }), timeline),
    "timeline",
  );
  const tlText = svgTexts(tl);
  for (const t of ["forward", "backward", "other", "40 MiB", ...POLICIES]) {
    assert.ok(tlText.includes(t), `timeline: no "${t}" in ${tlText.join(" | ")}`);
  }
  assert.ok(!tlText.includes("optimizer"), "the legend lists only the phases present");
});

Deno.test("each policy has one colour on every chart; a long title wraps", async () => {
  const colorOf = (spec: VegaLiteSpec) => {
    const c = (spec.encoding as { color: { scale: { domain: string[]; range: string[] } } })
      .color.scale;
    return Object.fromEntries(c.domain.map((d, i) => [d, c.range[i]]));
  };
  const a = colorOf(chartFromRows(metricVsSeq({ title: "t", y: "tokensPerSec" }), trainRows));
  const reversed = [...lossRows].reverse();
  const b = colorOf(chartFromRows(lossCurves({ title: "l" }), reversed));
  assert.equal(a["standard"], POLICY_COLORS["standard"]);
  assert.equal(b["standard"], a["standard"]);
  assert.equal(b["MsT + recomputation"], a["MsT + recomputation"]);
  // an unknown name: the same colour whatever else is drawn, never a taken one
  const [x1] = seriesColors(["my policy"]);
  const [, x2] = seriesColors(["standard", "my policy"]);
  assert.equal(x1, x2);
  const many = seriesColors(Array.from({ length: 8 }, (_, i) => `p${i}`));
  assert.equal(new Set(many).size, 8);

  assert.deepEqual(wrapText("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
  const long = "llama3-8b at S=8192: " + "a very long title about memory ".repeat(6);
  const svg = await render(
    chartFromRows(metricVsSeq({ title: long, y: "tokensPerSec", width: 300 }), trainRows),
    "long",
  );
  const width = Number(svg.match(/^<svg [^>]*width="(\d+(?:\.\d+)?)"/)![1]);
  assert.ok(width < 300 + 250, `a long title widened the SVG to ${width}px`);
});

Deno.test("downsampling keeps each series' peak and order", () => {
  const pts = downsampleMinMax(timeline, {
    x: "index",
    y: "liveBytes",
    group: "policy",
    maxPoints: 100,
  });
  for (const p of POLICIES) {
    const own = pts.filter((r) => r.policy === p);
    assert.ok(own.length <= 100 && own.length > 40, `${p}: ${own.length} points`);
    assert.ok(own.some((r) => r.index === 777 && r.liveBytes === 40 * MiB), `${p}: peak lost`);
    assert.ok(own.every((r, i) => i === 0 || (r.index as number) > (own[i - 1].index as number)));
  }
  assert.equal(downsampleMinMax(lossRows, { x: "step", y: "loss", maxPoints: 100 }).length, 8);
});

const charted = defineExperiment({
  name: "charted",
  description: "records rows and charts them with the helpers",
  defaults: { n: 3 },
  run(ctx) {
    for (const r of [...trainRows, ...lossRows, { kind: "note", text: "x" }]) ctx.record(r);
    ctx.chart("throughput", metricVsSeq({ title: "tok/s", y: "tokensPerSec" }), {
      kind: "train",
    });
    ctx.chart("mst-loss", lossCurves({ title: "MsT only" }), {
      kind: "loss",
      where: { policy: ["MsT + recomputation"] },
      transform: [{ filter: "datum.step >= 2" }],
    });
    assert.throws(
      () => ctx.chart("typo", lossCurves({ title: "l" }), { kind: "losss" }),
      /chart "typo": no rows of kind "losss" recorded yet \(kinds recorded: "train", "loss", "note"\)/,
    );
    assert.throws(
      () => ctx.chart("none", lossCurves({ title: "l" }), { kind: "loss", where: { policy: "x" } }),
      /no rows of kind "loss" where \{"policy":"x"\}/,
    );
    assert.throws(() => ctx.chart("nokind", lossCurves({ title: "l" })), /say which with \{ kind/);
    assert.throws(
      () => ctx.chart("fn", { helper: "lossCurves", args: { title: "t", f: (() => 1) as never } }),
      /plain JSON/,
    );
    assert.throws(() => ctx.chart("throughput", { mark: "bar" }), /registered twice/);
  },
});

Deno.test("deno task report re-renders charts from metrics.jsonl and charts.json", async () => {
  const out = await Deno.makeTempDir({ prefix: "charts-test-" });
  try {
    await runExperiment(charted, { device: "meta", out, print: () => {} });
    const defs = parseChartDefs(await Deno.readTextFile(`${out}/charts.json`), "charts.json");
    assert.deepEqual(defs.map((d) => [d.name, "helper" in d && d.helper, d.kind]), [
      ["throughput", "metricVsSeq", "train"],
      ["mst-loss", "lossCurves", "loss"],
    ]);
    const spec = JSON.parse(await Deno.readTextFile(`${out}/charts/throughput.vl.json`));
    assert.deepEqual(boundRows(spec), trainRows);
    const mst = JSON.parse(await Deno.readTextFile(`${out}/charts/mst-loss.vl.json`));
    // the rows as recorded, plus the helper's own field (each series' points set side by side)
    const recorded = boundRows(mst).map(({ __dodgeX: _, ...r }) => r);
    assert.deepEqual(recorded, lossRows.filter((r) => r.policy === "MsT + recomputation"));
    assert.equal(mst.transform[0].filter, "datum.step >= 2");
    const svg = await Deno.readTextFile(`${out}/charts/throughput.svg`);

    // charts/ is derived: delete it, re-render, the same files come back
    await Deno.remove(`${out}/charts`, { recursive: true });
    await rerenderReport(out);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${out}/charts/throughput.vl.json`)), spec);
    assert.equal(await Deno.readTextFile(`${out}/charts/throughput.svg`), svg);

    // a style change in a helper shows at the next re-render, with the same data
    const helper = CHART_HELPERS.metricVsSeq;
    const original = helper.spec;
    try {
      helper.spec = (a) => ({ ...original(a), background: "#fdf6e3" });
      await rerenderReport(out);
    } finally {
      helper.spec = original;
    }
    const restyled = JSON.parse(await Deno.readTextFile(`${out}/charts/throughput.vl.json`));
    assert.equal(restyled.background, "#fdf6e3");
    assert.deepEqual(boundRows(restyled), trainRows);
    assert.match(await Deno.readTextFile(`${out}/charts/throughput.svg`), /#fdf6e3/);
    assert.match(await Deno.readTextFile(`${out}/report.html`), /#fdf6e3/);

    // rows gone from the records: an empty-state chart, the report still renders
    const metrics = await Deno.readTextFile(`${out}/metrics.jsonl`);
    await Deno.writeTextFile(
      `${out}/metrics.jsonl`,
      metrics.split("\n").filter((l) => !l.includes('"kind":"loss"')).join("\n"),
    );
    await rerenderReport(out);
    const empty = await Deno.readTextFile(`${out}/charts/mst-loss.svg`);
    assert.ok(
      svgTexts(empty).some((t) => t.includes('no rows of kind "loss" where')),
      svgTexts(empty).join(" | "),
    );
    await Deno.writeTextFile(`${out}/metrics.jsonl`, metrics);

    // a bad definition names the file and the fix
    const good = await Deno.readTextFile(`${out}/charts.json`);
    await Deno.writeTextFile(`${out}/charts.json`, good.replace('"lossCurves"', '"lossCurvez"'));
    await assert.rejects(
      rerenderReport(out),
      /charts\.json: chart "mst-loss": no chart helper "lossCurvez" in lib\/report\/charts\.ts \(known: barsWithReference/,
    );

    // a run directory from before charts.json: its charts/*.vl.json are the definitions
    await Deno.remove(`${out}/charts.json`);
    await rerenderReport(out);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${out}/charts/throughput.vl.json`)), spec);
    assert.deepEqual((await readRunRecords(out)).chartDefs.map((d) => d.name), [
      "throughput",
      "mst-loss",
    ]);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("a plain vega-lite spec can draw from the rows of a kind too", async () => {
  const rows = [...trainRows, ...lossRows];
  const spec = {
    title: "raw",
    mark: "point",
    encoding: {
      x: { field: "seq", type: "quantitative" },
      y: { field: "tokensPerSec", type: "quantitative" },
      color: { field: "policy", type: "nominal", scale: { domain: null } },
    },
  };
  const r = resolveChart({ name: "raw", spec, kind: "train" }, rows);
  assert.deepEqual(boundRows(r.spec), trainRows);
  assert.equal(
    (r.spec.encoding as { color: { scale: { range: string[] } } }).color.scale.range[0],
    POLICY_COLORS.standard,
  );
  await render(r.spec, "raw");
  assert.deepEqual(chartSpec(lossCurves({ title: "x" })).data, { name: "rows" });
  assert.throws(
    () => makeChartDef("r", { data: { values: [] } }, { kind: "train" }),
    /chart "r": the spec has inline data and a kind/,
  );
});
