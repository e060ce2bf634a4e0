/**
 * Running an experiment into a run directory (see `lib/report/records.ts` for the layout):
 * resolve the config, create the directory, write `config.yaml` and the journal's header,
 * call `run(ctx)`, then write the chart definitions (`charts.json`), `metrics.jsonl`, the
 * rendered report and — last — `summary.json`, which marks the run complete. A run that
 * throws (or is killed) leaves its partial records and no `summary.json`, so it is never
 * mistaken for a finished run; `resume` continues it from its last finished sweep point
 * (`journal.ts`), with the config, `--quick` and device it was started with.
 */

import { writeTextAtomic } from "../util/atomic_write.ts";
import {
  parseJsonLines,
  RUN_FILES,
  runPath,
  type RunRecords,
  type RunSummary,
} from "../report/records.ts";
import { resolveChart } from "../report/chart_defs.ts";
import { writeReport } from "../report/write_report.ts";
import { configToYaml, type ExperimentConfig, resolveExperimentConfig } from "./config.ts";
import { RunContext } from "./context.ts";
import type { Experiment } from "./define.ts";
import { type RecoveredRun, recoverJournal, startJournal } from "./journal.ts";
import { loadExperiment } from "./registry.ts";

/** Options of {@link runExperiment}. */
export interface RunOptions {
  /** Apply the experiment's `quick` overrides (`--quick`). */
  quick?: boolean;
  /** The device of `ctx.device()` (default "webgpu"). */
  device?: "webgpu" | "meta";
  /** YAML text of a config file (`--config`), applied after the defaults. */
  yaml?: string;
  /** The YAML's file name, for error messages. */
  yamlSource?: string;
  /** `--set key=value` strings. */
  set?: readonly string[];
  /** The run directory (default `runs/<name>/<UTC stamp>`). */
  out?: string;
  /** The command line, recorded in the summary. */
  argv?: string[];
  /** Where log lines go (default console.log). */
  print?: (line: string) => void;
  /** Draw progress bars (default: when stderr is a terminal). */
  progress?: boolean;
  /**
   * An interrupted run directory to continue (no `summary.json`); its config, `quick` and
   * device are used, so `quick`, `device`, `yaml`, `set` and `out` must not be given.
   */
  resume?: string;
}

/** Result of a finished run. */
export interface RunResult {
  /** The run directory. */
  dir: string;
  /** What was written to `summary.json`. */
  summary: RunSummary;
}

/** `2025-11-28T10-42-03Z`: a UTC time stamp usable as a directory name. */
export function utcStamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z").replace(/:/g, "-");
}

async function isEmptyDir(dir: string): Promise<boolean | null> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) return false;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  for await (const _ of Deno.readDir(dir)) return false;
  return true;
}

/** Creates the run directory: `out` must be new or empty; the default gets a fresh stamp. */
async function createRunDir(name: string, out?: string): Promise<string> {
  if (out !== undefined) {
    const empty = await isEmptyDir(out);
    if (empty === false) {
      throw new Error(`--out ${out}: exists and is not an empty directory; choose a new one`);
    }
    await Deno.mkdir(out, { recursive: true });
    return out;
  }
  const base = `runs/${name}/${utcStamp()}`;
  for (let i = 1;; i++) {
    const dir = i === 1 ? base : `${base}-${i}`;
    try {
      await Deno.mkdir(`runs/${name}`, { recursive: true });
      await Deno.mkdir(dir);
      return dir;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
  }
}

/** How a run starts: its directory, config and facts, and the journal when resumed. */
interface RunStart<C extends ExperimentConfig> {
  dir: string;
  config: C;
  quick: boolean;
  deviceKind: "webgpu" | "meta";
  started: Date;
  configYaml: string;
  argv: string[];
  recovered?: RecoveredRun;
}

/** A new run: resolves the config, creates the directory, writes config.yaml and the journal. */
async function startRun<C extends ExperimentConfig>(
  exp: Experiment<C>,
  opts: RunOptions,
): Promise<RunStart<C>> {
  const quick = opts.quick ?? false;
  const config = resolveExperimentConfig(exp.defaults, {
    quick: quick ? exp.quick : undefined,
    yaml: opts.yaml,
    yamlSource: opts.yamlSource,
    set: opts.set,
  });
  const deviceKind = opts.device ?? "webgpu";
  const dir = await createRunDir(exp.name, opts.out);
  const started = new Date();
  const configYaml = configToYaml(
    config,
    `experiment ${exp.name}${
      quick ? " (quick)" : ""
    }, device ${deviceKind}, ${started.toISOString()}`,
  );
  await writeTextAtomic(runPath(dir, RUN_FILES.config), configYaml);
  const argv = opts.argv ?? [exp.name];
  await startJournal(dir, {
    experiment: exp.name,
    quick,
    device: deviceKind,
    startedAt: started.toISOString(),
    argv,
  });
  return { dir, config, quick, deviceKind, started, configYaml, argv };
}

/** A resumed run: the journal recovered, the config read back from config.yaml. */
async function resumeRun<C extends ExperimentConfig>(
  exp: Experiment<C>,
  opts: RunOptions,
  dir: string,
): Promise<RunStart<C>> {
  const given = (["quick", "device", "yaml", "set", "out"] as const).filter((k) =>
    opts[k] !== undefined && !(k === "set" && opts.set?.length === 0)
  );
  if (given.length > 0) {
    throw new Error(
      `--resume ${dir}: the run continues with the config, --quick and device it was started ` +
        `with; drop ${given.map((k) => k === "yaml" ? "--config" : `--${k}`).join(", ")}`,
    );
  }
  const recovered = await recoverJournal(dir, exp.name);
  const h = recovered.header;
  const configPath = runPath(dir, RUN_FILES.config);
  const configYaml = await Deno.readTextFile(configPath);
  const config = resolveExperimentConfig(exp.defaults, {
    yaml: configYaml,
    yamlSource: configPath,
  });
  return {
    dir,
    config,
    quick: h.quick,
    deviceKind: h.device,
    started: new Date(h.startedAt),
    configYaml,
    argv: h.argv,
    recovered,
  };
}

/**
 * Runs an experiment — given by name (a file of `experiments/`) or as a definition — and
 * writes its run directory; returns the directory and the summary. This is what
 * `deno task exp` calls, and what a script or notebook calls to run a study in-process.
 *
 * @example The quick configuration of `llama3-long` into a new temporary directory
 * ```ts ignore
 * import { readRunRecords, runExperiment } from "../mod.ts";
 * const { dir, summary } = await runExperiment("llama3-long", {
 *   quick: true,
 *   out: await Deno.makeTempDir(),
 * });
 * console.log(summary.figures, (await readRunRecords(dir)).charts.length);
 * ```
 */
export async function runExperiment<C extends ExperimentConfig>(
  experiment: Experiment<C> | string,
  opts: RunOptions = {},
): Promise<RunResult> {
  const exp = typeof experiment === "string"
    ? await loadExperiment(experiment) as unknown as Experiment<C>
    : experiment;
  const start = opts.resume === undefined
    ? await startRun(exp, opts)
    : await resumeRun(exp, opts, opts.resume);
  const { dir, config, quick, deviceKind, started, configYaml, argv } = start;
  const ctx = new RunContext<C>({
    name: exp.name,
    config,
    quick,
    deviceKind,
    dir,
    print: opts.print,
    progress: opts.progress,
    resume: start.recovered,
  });
  if (start.recovered) {
    const r = start.recovered;
    ctx.log(
      `resuming ${dir} (started ${r.header.startedAt}): ${r.points.size} finished sweep points, ` +
        `${r.rows} metric rows kept` +
        (r.dropped.metricRows > 0 || r.dropped.journalLines > 0
          ? `; dropped what the interruption left unfinished (${r.dropped.metricRows} rows)`
          : ""),
    );
  }
  const loadStart = loadAverage1();
  const writeLog = () =>
    writeTextAtomic(runPath(dir, RUN_FILES.log), ctx.logLines.join("\n") + "\n");
  try {
    try {
      await exp.run(ctx);
    } finally {
      ctx.destroyDevices();
    }
    const finished = new Date();
    await writeTextAtomic(
      runPath(dir, RUN_FILES.chartDefs),
      JSON.stringify(ctx.charts, null, 1) + "\n",
    );
    const metricsText = await Deno.readTextFile(ctx.metricsPath);
    await Deno.rename(ctx.metricsPath, runPath(dir, RUN_FILES.metrics));
    await writeLog();
    const summary: RunSummary = {
      experiment: exp.name,
      description: exp.description,
      device: deviceKind,
      quick,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      seconds: (finished.getTime() - started.getTime()) / 1000,
      argv,
      figures: ctx.figures,
      tables: ctx.tables,
      notes: ctx.notes,
      charts: ctx.charts.map((c) => c.name),
      devicesCreated: ctx.devicesCreated,
      load: { start: loadStart, end: loadAverage1(), cores: navigator.hardwareConcurrency },
    };
    const metrics = parseJsonLines(metricsText, runPath(dir, RUN_FILES.metrics));
    const records: RunRecords = {
      dir,
      configYaml,
      config: config as RunRecords["config"],
      metrics,
      summary,
      chartDefs: ctx.charts,
      charts: ctx.charts.map((d) => resolveChart(d, metrics)),
    };
    await writeReport(records);
    await writeTextAtomic(runPath(dir, RUN_FILES.summary), JSON.stringify(summary, null, 2) + "\n");
    return { dir, summary };
  } catch (e) {
    const err = e as Error;
    await writeLog().catch(() => {});
    await writeTextAtomic(
      runPath(dir, "error.txt"),
      `${err.stack ?? err.message}\n`,
    ).catch(() => {});
    throw new Error(
      `experiment ${exp.name} failed: ${err.message}\n(partial records in ${dir}; ` +
        `no summary.json, so it is not a finished run)`,
      { cause: e },
    );
  }
}

/** The machine's 1-minute load average, or null where the OS does not give one. */
function loadAverage1(): number | null {
  try {
    const l = Deno.loadavg()[0];
    return Number.isFinite(l) ? Math.round(l * 100) / 100 : null;
  } catch {
    return null;
  }
}
