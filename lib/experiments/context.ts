/**
 * The {@link ExperimentContext} given to `run`: it owns the run's devices, appends metric
 * rows to the run directory as they come, journals each finished sweep point, and collects
 * figures, tables, notes, charts and log lines for the end of the run.
 *
 * Resuming (`journal.ts`): `run` is called again from the start. Each sweep point the
 * journal has is skipped — its log lines are replayed and its recorded result returned —
 * and a row recorded outside a sweep that is already among the kept rows is not written
 * again. What follows the last finished point runs for real. Sweeps run one after the other
 * (nested sweeps are fine; concurrent ones are not).
 */

import { createDevice, type CreateDeviceOptions } from "../device/create.ts";
import type { Device } from "../device/device.ts";
import type { ExperimentConfig } from "./config.ts";
import type {
  ExperimentContext,
  Json,
  MetricRow,
  ReportTable,
  SweepOptions,
  VegaLiteSpec,
} from "./define.ts";
import { createProgress, describeItem, printAbove, type ProgressBar } from "./progress.ts";
import { parseJsonLines, RUN_FILES, runPath } from "../report/records.ts";
import type { ChartRecipe } from "../report/charts.ts";
import {
  appendDurable,
  decodeResult,
  encodeResult,
  JOURNAL_FILE,
  type JournalPoint,
  type RecoveredRun,
} from "./journal.ts";
import {
  type ChartDef,
  type ChartOptions,
  describeSelection,
  makeChartDef,
  selectRows,
} from "../report/chart_defs.ts";

/** Settings of a {@link RunContext}. */
export interface RunContextOptions<C extends ExperimentConfig> {
  name: string;
  config: C;
  quick: boolean;
  deviceKind: "webgpu" | "meta";
  dir: string;
  /** Where log lines go besides `log.txt` (default: stdout, above any progress bar). */
  print?: (line: string) => void;
  /** Draw progress bars (default: when stderr is a terminal). */
  progress?: boolean;
  /** The journal of an interrupted run to continue (`recoverJournal`); absent: a new run. */
  resume?: RecoveredRun;
}

/** A sweep item as text (JSON), to check that a resumed run sweeps the same items. */
function itemIdentity(item: unknown): string {
  let text: string;
  try {
    text = typeof item === "object" && item !== null ? JSON.stringify(item) : String(item);
  } catch {
    text = String(item);
  }
  return text.length > 200 ? text.slice(0, 200) + "…" : text;
}

/** The context implementation; `run.ts` reads back what it collected. */
export class RunContext<C extends ExperimentConfig> implements ExperimentContext<C> {
  readonly name: string;
  readonly config: Readonly<C>;
  readonly quick: boolean;
  readonly deviceKind: "webgpu" | "meta";
  readonly dir: string;
  readonly figures: Record<string, Json> = {};
  readonly tables: ReportTable[] = [];
  readonly notes: string[] = [];
  /** Chart definitions, in order (written to `charts.json`). */
  readonly charts: ChartDef[] = [];
  readonly logLines: string[] = [];
  /** The kinds of the devices the run created, in order (for the run table). */
  readonly devicesCreated: string[] = [];
  /** Metric rows of the run so far (kept from the interrupted run, then new ones). */
  rows = 0;
  /** Sweep points reused from the journal of an interrupted run. */
  resumedPoints = 0;
  #keptRows: number;
  #points: Map<string, JournalPoint>;
  #scope = "";
  #sweepsInScope = new Map<string, number>();
  #device: Promise<Device> | null = null;
  #devices: Device[] = [];
  #print: (line: string) => void;
  #progress: boolean | undefined;
  #metricsPath: string;

  constructor(opts: RunContextOptions<C>) {
    this.name = opts.name;
    this.config = opts.config;
    this.quick = opts.quick;
    this.deviceKind = opts.deviceKind;
    this.dir = opts.dir;
    this.#print = opts.print ?? printAbove;
    this.#progress = opts.progress;
    this.#metricsPath = runPath(opts.dir, RUN_FILES.metricsPartial);
    this.#keptRows = opts.resume?.rows ?? 0;
    this.#points = opts.resume?.points ?? new Map();
    if (!opts.resume) Deno.writeTextFileSync(this.#metricsPath, "");
  }

  /** Path of the run's journal. */
  get journalPath(): string {
    return runPath(this.dir, JOURNAL_FILE);
  }

  /** Path of the metrics file being appended to. */
  get metricsPath(): string {
    return this.#metricsPath;
  }

  device(): Promise<Device> {
    this.#device ??= this.createDevice(this.deviceKind);
    return this.#device;
  }

  async createDevice(kind: "webgpu" | "meta", opts?: CreateDeviceOptions): Promise<Device> {
    const dev = await createDevice(kind, opts);
    this.#devices.push(dev);
    this.devicesCreated.push(dev.kind);
    return dev;
  }

  record(row: MetricRow): void {
    // a row already kept from the interrupted run is not written twice
    if (this.rows >= this.#keptRows) {
      Deno.writeTextFileSync(this.#metricsPath, JSON.stringify(row) + "\n", { append: true });
    }
    this.rows++;
  }

  summary(figures: Record<string, Json>): void {
    Object.assign(this.figures, figures);
  }

  chart(name: string, chart: ChartRecipe | VegaLiteSpec, opts: ChartOptions = {}): void {
    if (this.charts.some((c) => c.name === name)) {
      throw new Error(`chart "${name}" is registered twice`);
    }
    const def = makeChartDef(name, chart, opts);
    if (def.kind !== undefined) {
      // the rows on disk, so rows appended by any means (e.g. a resumed run) count
      const rows = parseJsonLines(Deno.readTextFileSync(this.#metricsPath), this.#metricsPath);
      if (selectRows(rows, def).length === 0) {
        const kinds = [...new Set(rows.map((r) => JSON.stringify(r.kind ?? null)))];
        throw new Error(
          `chart "${name}": no rows of ${describeSelection(def)} recorded yet ` +
            `(kinds recorded: ${kinds.join(", ") || "none"}); record them with ` +
            `ctx.record({ kind: ${JSON.stringify(def.kind)}, … }) before registering the chart`,
        );
      }
    }
    this.charts.push(def);
  }

  table(table: ReportTable): void {
    for (const r of table.rows) {
      if (r.length !== table.columns.length) {
        throw new Error(
          `table "${table.title}": a row has ${r.length} cells for ${table.columns.length} columns`,
        );
      }
    }
    this.tables.push(table);
  }

  note(text: string): void {
    this.notes.push(text);
  }

  progress(label: string, total: number): ProgressBar {
    return createProgress(label, total, this.#progress);
  }

  async sweep<T, R>(
    label: string,
    items: readonly T[],
    fn: (item: T, i: number) => Promise<R> | R,
    opts: SweepOptions<T> = {},
  ): Promise<R[]> {
    const scope = this.#scope;
    const ordinal = this.#sweepsInScope.get(scope) ?? 0;
    this.#sweepsInScope.set(scope, ordinal + 1);
    const bar = this.progress(label, items.length);
    const describe = opts.describe ?? describeItem;
    const out: R[] = [];
    try {
      for (let i = 0; i < items.length; i++) {
        bar.item(describe(items[i], i));
        const key = `${scope}/${ordinal}:${i}`;
        const item = itemIdentity(items[i]);
        const done = this.#points.get(key);
        if (done) {
          if (done.sweep !== label || done.item !== item) {
            throw new Error(
              `resume: sweep point ${key} was "${done.sweep}" ${done.item} in the interrupted ` +
                `run but is "${label}" ${item} now: the experiment changed; start a new run`,
            );
          }
          for (const line of done.log) this.log(line);
          this.rows = done.rows;
          this.resumedPoints++;
          out.push(decodeResult(done.result) as R);
        } else {
          const logStart = this.logLines.length;
          this.#scope = key;
          let result: R;
          try {
            result = await fn(items[i], i);
          } finally {
            this.#scope = scope;
          }
          const point: JournalPoint = {
            point: key,
            sweep: label,
            item,
            rows: this.rows,
            log: this.logLines.slice(logStart),
            result: encodeResult(result, `sweep "${label}" item ${i}: the result`),
          };
          // the point's rows are on disk before the journal says it finished
          appendDurable(this.journalPath, JSON.stringify(point) + "\n", this.#metricsPath);
          out.push(result);
        }
        bar.tick();
      }
    } finally {
      bar.done();
    }
    return out;
  }

  log(message: string): void {
    this.logLines.push(message);
    this.#print(message);
  }

  /** Destroys every device the run created. */
  destroyDevices(): void {
    for (const d of this.#devices) {
      try {
        d.destroy();
      } catch {
        // already destroyed or lost: nothing left to free
      }
    }
    this.#devices = [];
    this.#device = null;
  }
}
