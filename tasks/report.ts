/**
 * `deno task report <run dir>`, `deno task report --index [DIR]`
 *
 * Re-renders a finished run's report — charts/*.vl.json and charts/*.svg (the chart helpers
 * of charts.json run again on the rows of metrics.jsonl), report.html and report.md — from
 * its records (config.yaml, metrics.jsonl, summary.json, charts.json).
 * With `--index`, writes `DIR/index.html` (default `runs/`): every run under DIR with its
 * experiment, date, device, key figures and a link to its report; failed and incomplete runs
 * are marked.
 */

import { parseTaskArgs } from "../lib/cli/args.ts";
import { writeRunsIndex } from "../lib/report/runs_index.ts";
import { rerenderReport } from "../lib/report/write_report.ts";
import { runTask } from "../lib/cli/task_main.ts";

const USAGE = `usage: deno task report <run dir>
       deno task report --index [DIR]

  <run dir>      re-renders report.html, report.md and charts/*.svg of a finished run
                 (a directory written by \`deno task exp\`, e.g. runs/llama3-long/2025-01-01T00-00-00Z)
  --index [DIR]  writes DIR/index.html (default DIR: runs): every run found under DIR, with its
                 experiment, date, device, key figures and a link to its report`;

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseTaskArgs(argv, {
    index: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, USAGE);
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.index) {
    if (positionals.length > 1) {
      throw new Error(`--index takes one directory, got ${positionals.join(" ")}\n\n${USAGE}`);
    }
    const { path, runs } = await writeRunsIndex(positionals[0] ?? "runs");
    const n = (s: string) => runs.filter((r) => r.status === s).length;
    console.log(
      `indexed ${runs.length} runs (${n("complete")} complete, ${n("failed")} failed, ` +
        `${n("incomplete")} incomplete): ${path}`,
    );
    return;
  }
  if (positionals.length !== 1) {
    throw new Error(`expected one run directory, got ${positionals.length}\n\n${USAGE}`);
  }
  const w = await rerenderReport(positionals[0]);
  console.log(`re-rendered ${w.svgs.length} charts, ${w.html} and ${w.markdown}`);
}

if (import.meta.main) await runTask("report", () => main(Deno.args));
