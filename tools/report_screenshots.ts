/**
 * `deno run -A tools/report_screenshots.ts [DIR…]`: screenshots of the reports for the docs.
 *
 * With run directories, uses their `report.html`; without, runs every shipped experiment with
 * `--quick` (on its default device) into a temporary directory first. Each report is checked in
 * headless Chromium at 1280 px (lib/testing/report_layout.ts) — a report with layout problems is
 * listed and the tool exits 1 — and its whole page is saved as `docs/img/report-<experiment>.png`.
 */

import { runExperiment } from "../lib/experiments/run.ts";
import { listExperiments } from "../lib/experiments/registry.ts";
import { readRunRecords } from "../lib/report/records.ts";
import { checkReportLayout, VIEWPORT } from "../lib/testing/report_layout.ts";

const IMG = new URL("../docs/img/", import.meta.url).pathname;
await Deno.mkdir(IMG, { recursive: true });

let dirs = Deno.args;
let tmp: string | null = null;
if (dirs.length === 0) {
  tmp = await Deno.makeTempDir({ prefix: "report-shots-" });
  const { experiments } = await listExperiments();
  dirs = [];
  for (const e of experiments) {
    console.log(`running ${e.name} --quick …`);
    const { dir } = await runExperiment(e.name, {
      quick: true,
      out: `${tmp}/${e.name}`,
      print: () => {},
      progress: false,
    });
    dirs.push(dir);
  }
}
let failed = 0;
try {
  for (const dir of dirs) {
    const { summary } = await readRunRecords(dir);
    const png = `${IMG}report-${summary.experiment}.png`;
    const r = await checkReportLayout(`${dir}/report.html`, { screenshot: png });
    const state = r.problems.length ? `${r.problems.length} layout problems` : "layout ok";
    console.log(
      `${summary.experiment}: ${r.charts} charts, ${VIEWPORT.width}×${r.height} px, ${state} → ${png}`,
    );
    for (const p of r.problems) console.log(`  - ${p}`);
    if (r.problems.length) failed++;
  }
} finally {
  if (tmp) await Deno.remove(tmp, { recursive: true });
}
if (failed) Deno.exit(1);
