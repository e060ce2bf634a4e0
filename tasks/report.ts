/**
 * `deno task report <run dir>`
 *
 * Re-renders a finished run's report — charts/*.vl.json and charts/*.svg (the chart helpers
 * of charts.json run again on the rows of metrics.jsonl), report.html and report.md — from
 * its records (config.yaml, metrics.jsonl, summary.json, charts.json).
 */

import { parseTaskArgs } from "../lib/cli/args.ts";
import { rerenderReport } from "../lib/report/write_report.ts";

const USAGE = `usage: deno task report <run dir>

  Re-renders report.html, report.md and charts/*.svg of a finished run
  (a directory written by \`deno task exp\`, e.g. runs/llama3-long/2025-01-01T00-00-00Z).`;

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseTaskArgs(argv, {
    help: { type: "boolean", short: "h" },
  }, USAGE);
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (positionals.length !== 1) {
    throw new Error(`expected one run directory, got ${positionals.length}\n\n${USAGE}`);
  }
  const w = await rerenderReport(positionals[0]);
  console.log(`re-rendered ${w.svgs.length} charts, ${w.html} and ${w.markdown}`);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`report: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
