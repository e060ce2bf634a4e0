/**
 * `defineExperiment`: an experiment is a name, a description, defaults (optionally lighter
 * ones for `--quick`) and a `run(ctx)` function. `deno task exp <name>` resolves and checks
 * the config, creates the run directory, calls `run` with an {@link ExperimentContext} and
 * writes the report.
 *
 * A default is a plain value (its type is checked) or a rule of `lib/config/rules.ts` saying which
 * values are allowed (`int(3, { min: 1 })`, `oneOf("brown", ["brown", "repeat"])`,
 * `bytes("80GiB")`…); `ctx.config` has each rule's value type.
 *
 * @example A two-line experiment
 * ```ts
 * import { defineExperiment } from "./define.ts";
 * import { int } from "../config/rules.ts";
 *
 * export default defineExperiment({
 *   name: "squares",
 *   description: "n² for n = 1..N",
 *   defaults: { n: int(5, { min: 1, doc: "largest n" }) },
 *   quick: { n: 3 },
 *   run(ctx) {
 *     for (let i = 1; i <= ctx.config.n; i++) ctx.record({ n: i, square: i * i });
 *     ctx.summary({ last: ctx.config.n ** 2 });
 *   },
 * });
 * ```
 */

import type { CreateDeviceOptions } from "../device/create.ts";
import type { Device } from "../device/device.ts";
import {
  type ConfigOf,
  type ConfigSpec,
  type ExperimentConfig,
  type ExperimentDefaults,
  validateDefaults,
} from "./config.ts";
import type { ProgressBar } from "./progress.ts";
import type { Json, MetricRow, ReportTable, VegaLiteSpec } from "../report/json.ts";
import type { ChartRecipe } from "../report/charts.ts";
import type { ChartOptions } from "../report/chart_defs.ts";

export type { Json, MetricRow, ReportTable, VegaLiteSpec };

/** What `run` receives. */
export interface ExperimentContext<C extends ExperimentConfig> {
  /** The experiment's name. */
  readonly name: string;
  /** The resolved config (defaults ← quick ← YAML ← `--set`). */
  readonly config: Readonly<C>;
  /** True with `--quick`: a small version that finishes in a minute or two. */
  readonly quick: boolean;
  /** The device kind chosen with `--device` (default webgpu). */
  readonly deviceKind: "webgpu" | "meta";
  /** The run directory being written. */
  readonly dir: string;
  /** The run's device (`--device`), created on first use and destroyed after the run. */
  device(): Promise<Device>;
  /** Another device (e.g. a meta device counting bf16), destroyed after the run. */
  createDevice(kind: "webgpu" | "meta", opts?: CreateDeviceOptions): Promise<Device>;
  /** Appends one row to `metrics.jsonl` (written immediately). */
  record(row: MetricRow): void;
  /** Merges key figures into `summary.json` (written when the run completes). */
  summary(figures: Record<string, Json>): void;
  /**
   * Registers a chart drawn from the `metrics.jsonl` rows of `opts.kind`: a helper of
   * `lib/report/charts.ts` (e.g. `lossCurves({ title })`) or a vega-lite spec drawing from
   * the data named "rows". The definition goes to `charts.json`; `charts/<name>.vl.json`
   * (data inline) and `charts/<name>.svg` are rendered from it and the rows, again by
   * `deno task report`. Throws when no row of that kind has been recorded yet. A spec with
   * inline data and no kind is kept as it is.
   */
  chart(name: string, chart: ChartRecipe | VegaLiteSpec, opts?: ChartOptions): void;
  /** Adds a table to the report (stored in `summary.json`). */
  table(table: ReportTable): void;
  /** Adds a paragraph of plain text to the report (stored in `summary.json`). */
  note(text: string): void;
  /** A progress bar on stderr when it is a terminal (quiet otherwise). */
  progress(label: string, total: number): ProgressBar;
  /**
   * Runs `fn` over `items` in order with a progress bar; returns the results.
   * A sweep helper: `await ctx.sweep("S", [256, 512], (S) => measure(S))`. The bar shows the
   * item being run (`S=1024 standard` for `{ seq: 1024, label: "standard" }`, see
   * `describeItem`), or `opts.describe(item)`.
   * Each finished point is journaled; when the run is resumed (`exp --resume`), finished
   * points are not run again: their recorded result is returned. So `fn` returns plain data
   * (numbers, strings, arrays, plain objects) and keeps what later code needs in its result,
   * not in variables it sets.
   */
  sweep<T, R>(
    label: string,
    items: readonly T[],
    fn: (item: T, i: number) => Promise<R> | R,
    opts?: SweepOptions<T>,
  ): Promise<R[]>;
  /** Prints a line (stdout) and keeps it in `log.txt`. */
  log(message: string): void;
}

/** Options of {@link ExperimentContext.sweep}. */
export interface SweepOptions<T> {
  /** The text the progress bar shows for an item (default `describeItem`). */
  describe?: (item: T, i: number) => string;
}

/** An experiment definition (the default export of `experiments/<name>.ts`). */
export interface Experiment<C extends ExperimentConfig = ExperimentConfig> {
  /** Name, equal to the file name in `experiments/`. */
  name: string;
  /** One line for `--list` and the report. */
  description: string;
  /**
   * Every config key with its default: a plain value (fixes the key's type) or a rule of
   * `lib/config/rules.ts` (fixes its type and allowed values, shown by `--help`).
   */
  defaults: ConfigSpec<C>;
  /** Overrides applied with `--quick`. */
  quick?: Partial<C>;
  /** The experiment. */
  run(ctx: ExperimentContext<C>): Promise<void> | void;
}

/**
 * Defines an experiment; validates the name, the defaults (each allowed by its rule) and the
 * `quick` overrides, so a broken experiment fails when it is loaded.
 */
export function defineExperiment<D extends ExperimentDefaults>(
  def: Omit<Experiment<ConfigOf<D>>, "defaults"> & { defaults: D },
): Experiment<ConfigOf<D>> {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(def.name)) {
    throw new Error(
      `experiment name "${def.name}": use lower-case letters, digits, ".", "_" or "-"`,
    );
  }
  validateDefaults(def.name, def.defaults, def.quick);
  return def as unknown as Experiment<ConfigOf<D>>;
}
