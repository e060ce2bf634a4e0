/**
 * The run record: what `deno task exp` writes into a run directory and what
 * `deno task report` reads back to re-render the report.
 *
 * ```
 * <run dir>/
 *   config.yaml        the resolved config (usable again with --config)
 *   metrics.jsonl      one JSON object per line (ctx.record)
 *   charts.json        the chart definitions (ctx.chart): helper + arguments + rows' kind
 *   charts/<c>.vl.json vega-lite specs with their data inline (rendered from the above)
 *   charts/<c>.svg     the same charts rendered
 *   report.html        self-contained (inline SVG, no network)
 *   report.md          links charts/*.svg
 *   log.txt            the run's log lines
 *   journal.jsonl      finished sweep points, for `deno task exp --resume` (lib/experiments/journal.ts)
 *   summary.json       written last: its presence marks the run complete
 * ```
 *
 * While a run is going, rows go to `metrics.jsonl.partial`; it is renamed at the end.
 * `charts/` is derived: `deno task report` rewrites it from `charts.json` and
 * `metrics.jsonl`. A run directory from before `charts.json` existed keeps its
 * `charts/*.vl.json` (data inline) as its chart definitions.
 */

import { parse } from "@std/yaml";
import { type ChartDef, parseChartDefs, resolveChart } from "./chart_defs.ts";
import type { Json, MetricRow, ReportTable, VegaLiteSpec } from "./json.ts";

/** Contents of `summary.json`. */
export interface RunSummary {
  /** The experiment's name. */
  experiment: string;
  /** The experiment's description. */
  description: string;
  /** The device of the run (`webgpu` or `meta`). */
  device: string;
  /** Whether the `--quick` overrides were applied. */
  quick: boolean;
  /** Start time, ISO (UTC). */
  startedAt: string;
  /** End time, ISO (UTC). */
  finishedAt: string;
  /** Wall time of the run, seconds. */
  seconds: number;
  /** The command line after `deno task exp`. */
  argv: string[];
  /** Key figures (ctx.summary). */
  figures: Record<string, Json>;
  /** The experiment's tables (ctx.table), in order. */
  tables: ReportTable[];
  /** The experiment's notes (ctx.note), in order. */
  notes: string[];
  /** Chart names, in the order they were registered. */
  charts: string[];
  /**
   * The kinds of the devices the run created (ctx.device / ctx.createDevice), in order; empty
   * for a run that only planned. Absent in runs written before it was recorded.
   */
  devicesCreated?: string[];
  /** The machine's load while the run ran (absent in older runs). */
  load?: RunLoad;
}

/** The 1-minute load average at the start and end of a run, beside the core count. */
export interface RunLoad {
  /** 1-minute load average when the run started (null where the OS gives none). */
  start: number | null;
  /** 1-minute load average when the run finished. */
  end: number | null;
  /** Logical CPU cores of the machine. */
  cores: number;
}

/** The rows of a run table saying what the run used: device(s) and load (shared by reports). */
export function runTableRows(s: RunSummary): [string, string][] {
  const rows: [string, string][] = [];
  if (s.devicesCreated === undefined) rows.push(["device", s.device]);
  else if (s.devicesCreated.length === 0) {
    rows.push(["device", `none created (planning only; --device ${s.device} unused)`]);
  } else rows.push(["device", [...new Set(s.devicesCreated)].join(", ")]);
  if (s.load) {
    const f = (v: number | null) => v === null ? "—" : v.toFixed(2);
    rows.push([
      "load average (1 min)",
      `${f(s.load.start)} at start, ${f(s.load.end)} at end (${s.load.cores} cores)`,
    ]);
  }
  return rows;
}

/** A warning when the load exceeded the cores during the run (timings are then noisy). */
export function loadWarning(s: RunSummary): string | null {
  const l = s.load;
  if (!l) return null;
  const worst = Math.max(l.start ?? 0, l.end ?? 0);
  if (worst <= l.cores) return null;
  return `Warning: the machine's 1-minute load average reached ${worst.toFixed(2)} on ` +
    `${l.cores} cores during this run: other work competed for the CPU, so times and ` +
    `tokens/s are noisy (compare the policies' ratios, measured interleaved, not absolute figures).`;
}

/** Everything in a finished run directory. */
export interface RunRecords {
  /** The run directory. */
  dir: string;
  /** `config.yaml` as written. */
  configYaml: string;
  /** The resolved config. */
  config: Record<string, Json>;
  /** The rows of `metrics.jsonl`. */
  metrics: MetricRow[];
  /** `summary.json`. */
  summary: RunSummary;
  /** The chart definitions (`charts.json`). */
  chartDefs: ChartDef[];
  /** The charts resolved against `metrics`: finished specs, data inline. */
  charts: { name: string; spec: VegaLiteSpec }[];
}

/** File names inside a run directory. */
export const RUN_FILES = {
  config: "config.yaml",
  metrics: "metrics.jsonl",
  metricsPartial: "metrics.jsonl.partial",
  summary: "summary.json",
  html: "report.html",
  markdown: "report.md",
  log: "log.txt",
  chartDefs: "charts.json",
  charts: "charts",
} as const;

/** Path join for run files (POSIX separators are fine on every Deno platform). */
export function runPath(dir: string, ...parts: string[]): string {
  return [dir.replace(/\/+$/, ""), ...parts].join("/");
}

async function readText(dir: string, file: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(runPath(dir, file));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${dir}: no ${file} (${what})`);
    }
    throw e;
  }
}

/** Parses JSON lines; errors name the file and line. */
export function parseJsonLines(text: string, source: string): MetricRow[] {
  const rows: MetricRow[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      rows.push(JSON.parse(line));
    } catch (e) {
      throw new Error(`${source}:${i + 1}: not JSON (${(e as Error).message})`);
    }
  });
  return rows;
}

/** Reads a finished run directory (refuses an incomplete one). */
export async function readRunRecords(dir: string): Promise<RunRecords> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) throw new Error(`${dir} is not a directory`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${dir}: no such run directory`);
    throw e;
  }
  const summaryText = await readText(
    dir,
    RUN_FILES.summary,
    "the run is incomplete: it failed or is still running",
  );
  let summary: RunSummary;
  try {
    summary = JSON.parse(summaryText);
  } catch (e) {
    throw new Error(`${runPath(dir, RUN_FILES.summary)}: not JSON (${(e as Error).message})`);
  }
  const configYaml = await readText(dir, RUN_FILES.config, "not a run directory?");
  const config = (parse(configYaml) ?? {}) as Record<string, Json>;
  const metrics = parseJsonLines(
    await readText(dir, RUN_FILES.metrics, "not a run directory?"),
    runPath(dir, RUN_FILES.metrics),
  );
  const chartDefs = await readChartDefs(dir, summary);
  const charts = chartDefs.map((d) => resolveChart(d, metrics));
  return { dir, configYaml, config, metrics, summary, chartDefs, charts };
}

/**
 * The chart definitions of a run: `charts.json`, or in a run directory written before it
 * existed, each `charts/<name>.vl.json` listed in the summary as a spec with inline data.
 */
async function readChartDefs(dir: string, summary: RunSummary): Promise<ChartDef[]> {
  const path = runPath(dir, RUN_FILES.chartDefs);
  try {
    return parseChartDefs(await Deno.readTextFile(path), path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const defs: ChartDef[] = [];
  for (const name of summary.charts ?? []) {
    const file = `${RUN_FILES.charts}/${name}.vl.json`;
    const text = await readText(
      dir,
      file,
      `chart "${name}" is listed in summary.json and there is no ${RUN_FILES.chartDefs}`,
    );
    try {
      defs.push({ name, spec: JSON.parse(text) as VegaLiteSpec });
    } catch (e) {
      throw new Error(`${runPath(dir, file)}: not JSON (${(e as Error).message})`);
    }
  }
  return defs;
}
