/**
 * The layout checker (lib/testing/report_layout.ts) itself: a page with each kind of problem
 * is caught, a report built by the workbench with a wide table and long legends passes; and the
 * run table says which devices a run created and the machine's load, with a warning above the
 * cores. (Every experiment's --quick report is checked where the suites run it:
 * tests/experiments_suite_test.ts and tests/experiments_test.ts.)
 */

import assert from "node:assert/strict";
import { checkReportLayout, chromiumPath } from "../lib/testing/report_layout.ts";
import { buildHtml } from "../lib/report/html.ts";
import {
  loadWarning,
  type RunRecords,
  type RunSummary,
  runTableRows,
} from "../lib/report/records.ts";
import { chartFromRows, resolveChart } from "../lib/report/chart_defs.ts";
import { lossCurves, metricVsSeq, stackedPeak } from "../lib/report/charts.ts";
import { renderSvg } from "../lib/report/render_svg.ts";
import { TAGS } from "../lib/device/allocator.ts";

const summary = (over: Partial<RunSummary> = {}): RunSummary => ({
  experiment: "t",
  description: "a test report",
  device: "webgpu",
  quick: true,
  startedAt: "2026-01-01T00:00:00.000Z",
  finishedAt: "2026-01-01T00:00:01.000Z",
  seconds: 1,
  argv: ["t", "--quick"],
  figures: {},
  tables: [],
  notes: [],
  charts: [],
  ...over,
});

Deno.test("the run table names the devices created and the load; a load above the cores warns", () => {
  assert.deepEqual(runTableRows(summary({ devicesCreated: [] }))[0], [
    "device",
    "none created (planning only; --device webgpu unused)",
  ]);
  assert.deepEqual(runTableRows(summary({ devicesCreated: ["webgpu", "meta", "meta"] }))[0], [
    "device",
    "webgpu, meta",
  ]);
  assert.deepEqual(runTableRows(summary())[0], ["device", "webgpu"], "older runs: as recorded");
  const load = { start: 1.5, end: 3.25, cores: 2 };
  assert.deepEqual(runTableRows(summary({ load }))[1], [
    "load average (1 min)",
    "1.50 at start, 3.25 at end (2 cores)",
  ]);
  assert.match(loadWarning(summary({ load }))!, /load average reached 3\.25 on 2 cores/);
  assert.equal(loadWarning(summary({ load: { start: 0.5, end: 2, cores: 2 } })), null);
  const html = buildHtml(
    {
      summary: summary({ load, devicesCreated: [] }),
      charts: [],
      metrics: [],
      configYaml: "",
    } as unknown as RunRecords,
    new Map(),
  );
  assert.match(
    html,
    /class="warning">Warning: the machine&#39;s|class="warning">Warning: the machine's/,
  );
  assert.match(html, /none created \(planning only/);
});

const hasChromium = chromiumPath() !== null;

Deno.test({
  name: "the layout check catches a wide element, a legend outside its SVG, overlapping text",
  ignore: !hasChromium && Deno.env.get("MST_REQUIRE_BROWSER") !== "1",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "layout-test-" });
    try {
      const bad = `${dir}/bad.html`;
      await Deno.writeTextFile(
        bad,
        `<!DOCTYPE html><html><body style="max-width: 600px; margin: 0 auto; padding: 0 10px">
<div style="width: 900px">too wide</div>
<figure id="chart-a"><svg width="200" height="100" viewBox="0 0 200 100">
<g class="role-legend"><rect x="150" y="10" width="150" height="20"/></g>
<text x="10" y="50" font-size="14">overlapping one</text>
<text x="14" y="52" font-size="14">overlapping two</text>
</svg></figure></body></html>`,
      );
      const r = await checkReportLayout(bad);
      const text = r.problems.join("\n");
      assert.match(text, /page scrolls sideways|outside the main column/);
      assert.match(text, /div "too wide" .*is outside the main column/);
      assert.match(text, /a legend of svg .* lies outside its SVG/);
      assert.match(text, /text "overlapping one" .*overlaps text "overlapping two"/);

      // a workbench report: a wide table (scrolls in its own box), long legends, empty state
      const policies = [
        "MsT + recomputation + optimizer-in-backward",
        "MsT + recomputation + checkpoint offload",
        "standard (HF)",
        "a very long policy name someone wrote for their own ablation study",
      ];
      const rows = policies.flatMap((policy, i) => [
        ...[256, 512, 1024].map((seq) => ({
          kind: "train",
          policy,
          seq,
          tokensPerSec: 1000 + 10 * i + seq / 10,
          lo: 990,
          hi: 1100 + seq,
        })),
        ...TAGS.map((tag, j) => ({
          kind: "breakdown",
          policy,
          tag,
          bytes: (j + 1) * 2 ** 30,
          phase: "backward",
        })),
        ...[1, 2, 3].map((step) => ({ kind: "loss", policy, step, loss: null })),
      ]);
      const charts = [
        {
          name: "tput",
          spec: chartFromRows(
            metricVsSeq({
              title: "a long title that must wrap at word boundaries (max |Δ| 4.77e-7) ".repeat(2),
              y: "tokensPerSec",
              yMin: "lo",
              yMax: "hi",
            }),
            rows.filter((r) => r.kind === "train"),
          ),
        },
        {
          name: "stack",
          spec: chartFromRows(
            stackedPeak({
              title: "peak",
              y: "policy",
              stack: "tag",
              x: "bytes",
              budget: 80 * 2 ** 30,
              phase: "phase",
            }),
            rows.filter((r) => r.kind === "breakdown"),
          ),
        },
        resolveChart({
          name: "loss",
          helper: "lossCurves",
          args: lossCurves({ title: "loss", ifEmpty: "no losses on the meta device" }).args,
          kind: "loss",
        }, rows),
      ];
      const svgs = new Map<string, string>();
      for (const c of charts) svgs.set(c.name, await renderSvg(c.spec, c.name));
      const wide = {
        title: "a wide table",
        columns: Array.from({ length: 30 }, (_, i) => `column number ${i}`),
        rows: [Array.from({ length: 30 }, (_, i) => i * 1234.5678)],
      };
      const good = `${dir}/good.html`;
      await Deno.writeTextFile(
        good,
        buildHtml(
          {
            summary: summary({ tables: [wide], devicesCreated: ["webgpu"] }),
            charts,
            metrics: [],
            configYaml: "a: 1",
          } as unknown as RunRecords,
          svgs,
        ),
      );
      assert.match(await Deno.readTextFile(good), /no losses on the meta device/);
      const ok = await checkReportLayout(good);
      assert.deepEqual(ok.problems, []);
      assert.equal(ok.charts, 3);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
