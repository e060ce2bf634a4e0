/**
 * Chart definitions as a run stores them (`charts.json`) and their resolution into finished
 * vega-lite specs. A definition is a helper's recipe (`charts.ts`) or a plain vega-lite spec,
 * plus the rows it draws: the `metrics.jsonl` rows whose `kind` is `kind`, narrowed by
 * `where` (field → value, or a list of accepted values) and reshaped by extra vega-lite
 * `transform`s. {@link resolveChart} re-runs the helper on the rows, so the finished spec
 * (`charts/<name>.vl.json`, data inline) always follows the current helper code.
 *
 * A definition whose selection holds no rows resolves to an empty-state chart that says so
 * (the report still renders); `ctx.chart` refuses such a chart while the run is going.
 */

import { type ChartRecipe, chartSpec, checkRecipe, isChartRecipe, prepareRows } from "./charts.ts";
import { ROWS, seriesColors, wrapText } from "./chart_style.ts";
import type { Json, MetricRow, VegaLiteSpec } from "./json.ts";
import { chartWidth, VEGA_LITE_SCHEMA } from "./render_svg.ts";

/** Which metric rows a chart draws and how they are reshaped (all JSON: it is stored). */
export interface ChartOptions {
  /** Draw the rows of `metrics.jsonl` whose `kind` equals this. */
  kind?: string;
  /**
   * Keep only rows whose fields equal these values (a list: any of them). Filters are data,
   * not functions, so they can be re-applied from the records by `deno task report`.
   */
  where?: Record<string, Json>;
  /** Vega-lite transforms applied to the rows before the chart's own. */
  transform?: Record<string, Json>[];
}

/** One entry of `charts.json`. */
export type ChartDef =
  & { name: string }
  & ChartOptions
  & ({ helper: ChartRecipe["helper"]; args: ChartRecipe["args"] } | { spec: VegaLiteSpec });

/** A chart resolved against the rows: its name and finished spec (data inline). */
export interface ResolvedChart {
  name: string;
  spec: VegaLiteSpec;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/** Builds and checks a definition (the work of `ctx.chart`). */
export function makeChartDef(
  name: string,
  chart: ChartRecipe | VegaLiteSpec,
  opts: ChartOptions = {},
): ChartDef {
  if (!NAME.test(name)) {
    throw new Error(`chart name "${name}": use letters, digits, "_" or "-" (it names files)`);
  }
  const sel: ChartOptions = {};
  if (opts.kind !== undefined) sel.kind = opts.kind;
  if (opts.where !== undefined) sel.where = opts.where;
  if (opts.transform !== undefined) sel.transform = opts.transform;
  const def: ChartDef = isChartRecipe(chart)
    ? { name, helper: chart.helper, args: chart.args, ...sel }
    : { name, spec: chart, ...sel };
  checkChartDef(def, `chart "${name}"`);
  return def;
}

/** Checks a definition (also one read back from `charts.json`); errors name `where`. */
function checkChartDef(def: ChartDef, where: string): void {
  if (def.kind !== undefined && typeof def.kind !== "string") {
    throw new Error(`${where}: kind must be a string`);
  }
  if (
    def.where !== undefined &&
    (def.where === null || typeof def.where !== "object" || Array.isArray(def.where))
  ) {
    throw new Error(`${where}: where must be an object of field → value(s)`);
  }
  if (def.transform !== undefined && !Array.isArray(def.transform)) {
    throw new Error(`${where}: transform must be a list of vega-lite transforms`);
  }
  if ("helper" in def) {
    checkRecipe(def, where);
    if (def.kind === undefined) {
      throw new Error(
        `${where}: a chart helper draws from metric rows; say which with { kind: "…" }`,
      );
    }
    chartSpec(def); // the helper's own checks
    return;
  }
  if (def.spec === null || typeof def.spec !== "object" || Array.isArray(def.spec)) {
    throw new Error(`${where}: expected a chart helper's result or a vega-lite spec object`);
  }
  const data = def.spec.data as { values?: unknown } | undefined;
  if (def.kind !== undefined && data?.values !== undefined) {
    throw new Error(
      `${where}: the spec has inline data and a kind; drop one (with a kind, the rows are ` +
        `bound to the data source named "${ROWS}" at render time)`,
    );
  }
}

/** The rows of `metrics` the definition draws (by kind and `where`). */
export function selectRows(metrics: readonly MetricRow[], def: ChartOptions): MetricRow[] {
  const where = Object.entries(def.where ?? {});
  const same = (a: Json | undefined, b: Json) => JSON.stringify(a) === JSON.stringify(b);
  return metrics.filter((r) =>
    (def.kind === undefined || r.kind === def.kind) &&
    where.every(([k, v]) => Array.isArray(v) ? v.some((x) => same(r[k], x)) : same(r[k], v))
  );
}

/** Describes a selection for messages: `kind "x"` with its `where`. */
export function describeSelection(def: ChartOptions): string {
  const w = def.where ? ` where ${JSON.stringify(def.where)}` : "";
  return `${def.kind === undefined ? "any kind" : `kind ${JSON.stringify(def.kind)}`}${w}`;
}

/**
 * The spec of a chart with nothing to draw: its title and the reason, wrapped to the width,
 * in a framed box of the chart's width (so the report says why the chart is empty).
 */
function emptyChart(title: unknown, message: string, width = 480): VegaLiteSpec {
  const lines = wrapText(message, Math.max(20, Math.floor((width - 16) / (0.8 * 12))));
  return {
    $schema: VEGA_LITE_SCHEMA,
    ...(title !== undefined ? { title } : {}),
    width,
    height: 16 + 16 * lines.length,
    data: { values: lines.map((line, i) => ({ line, i })) },
    mark: { type: "text", align: "left", baseline: "top", x: 8, fontSize: 12, color: "#a00" },
    encoding: {
      y: { field: "i", type: "ordinal", axis: null },
      text: { field: "line" },
    },
    config: { view: { stroke: "#ccc" } },
  };
}

/** The field a helper's chart needs values of (null: none in particular). */
function valueField(def: ChartDef): string | null {
  if (!("helper" in def)) return null;
  const a = def.args as Record<string, unknown>;
  if (def.helper === "lossCurves") return typeof a.y === "string" ? a.y : "loss";
  if (def.helper === "metricVsSeq") return a.y as string;
  return null;
}

type Obj = Record<string, unknown>;

/**
 * Binds `rows` to the spec's `rows` data source. Every series colour scale (a nominal colour
 * with no range) gets one colour per name: the scale's own domain first, then the other
 * names in row order. A fixed colour scale (domain and range given, e.g. memory tags) keeps
 * its colours, and its legend lists only the values present in the rows.
 */
export function bindRows(spec: VegaLiteSpec, rows: readonly MetricRow[]): VegaLiteSpec {
  const width = chartWidth(spec);
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== "object") return v;
    const o = v as Obj;
    const out: Obj = {};
    let seriesDomain: { field: string; domain: string[] } | null = null;
    for (const [k, x] of Object.entries(o)) {
      if (k === "data" && (x as Obj)?.name === ROWS && !("values" in (x as Obj))) {
        // copies: vega tags and extends the objects it is given
        out[k] = { name: ROWS, values: rows.map((r) => ({ ...r })) };
      } else if (k === "color" && isSeriesColor(x)) {
        const c = colorScale(x as Obj, rows, width);
        seriesDomain = { field: c.field as string, domain: (c.scale as Obj).domain as string[] };
        out[k] = c;
      } else if (k === "color" && isFixedColor(x)) {
        out[k] = presentInLegend(x as Obj, rows, width);
      } else out[k] = walk(x);
    }
    for (const k of ["shape", "strokeDash"]) {
      const c = out[k] as Obj | undefined;
      if (!seriesDomain || !c || c.field !== seriesDomain.field) continue;
      const scale = c.scale as Obj;
      const range = scale.range as unknown[];
      const domain = seriesDomain.domain;
      out[k] = {
        ...c,
        scale: { ...scale, domain, range: domain.map((_, i) => range[i % range.length]) },
      };
    }
    return out;
  };
  // shape / dash scales nested in layers take the domain of the series colour of the spec
  const bound = walk(spec) as VegaLiteSpec;
  return shareSeriesDomain(bound);
}

/** Legend columns that fit `width` px for these labels (vega's estimate: 0.8 × 10 px a char). */
function legendColumns(labels: readonly string[], width: number): number {
  const longest = Math.max(1, ...labels.map((l) => l.length));
  const entry = 8 * longest + 30; // symbol, padding and label
  return Math.max(1, Math.min(labels.length, Math.floor(width / entry)));
}

function withColumns(legend: unknown, labels: readonly string[], width: number): unknown {
  if (legend === null || typeof legend !== "object") return legend;
  const l = legend as Obj;
  if (l.orient !== "bottom" && l.orient !== "top") return legend;
  return { ...l, columns: legendColumns(labels, width) };
}

/**
 * The domain of the top-level series colour copied to `shape` and `strokeDash` scales on the
 * same field anywhere below (a layer's marks), so one legend shows colour, shape and dash.
 */
function shareSeriesDomain(spec: VegaLiteSpec): VegaLiteSpec {
  const color = (spec.encoding as Obj | undefined)?.color as Obj | undefined;
  const domain = (color?.scale as Obj | undefined)?.domain;
  if (!color || !Array.isArray(domain)) return spec;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== "object") return v;
    const out: Obj = {};
    for (const [k, x] of Object.entries(v as Obj)) {
      const c = x as Obj;
      if (
        (k === "shape" || k === "strokeDash") && c && typeof c === "object" &&
        c.field === color.field && Array.isArray((c.scale as Obj | undefined)?.range)
      ) {
        const range = (c.scale as Obj).range as unknown[];
        out[k] = {
          ...c,
          scale: {
            ...(c.scale as Obj),
            domain,
            range: domain.map((_, i) => range[i % range.length]),
          },
          legend: color.legend ?? null,
        };
      } else out[k] = walk(x);
    }
    return out;
  };
  return walk(spec) as VegaLiteSpec;
}

function isSeriesColor(x: unknown): boolean {
  if (x === null || typeof x !== "object") return false;
  const c = x as { field?: unknown; type?: unknown; scale?: Obj };
  return typeof c.field === "string" && c.type === "nominal" &&
    c.scale !== undefined && c.scale !== null && !("range" in c.scale) && !("scheme" in c.scale);
}

function isFixedColor(x: unknown): boolean {
  if (x === null || typeof x !== "object") return false;
  const c = x as { field?: unknown; scale?: Obj; legend?: unknown };
  return typeof c.field === "string" && Array.isArray(c.scale?.domain) &&
    Array.isArray(c.scale?.range) && c.legend !== null;
}

function presentInLegend(c: Obj, rows: readonly MetricRow[], width: number): Obj {
  const field = c.field as string;
  const present = new Set(rows.map((r) => String(r[field])));
  const values = ((c.scale as Obj).domain as unknown[]).filter((d) => present.has(String(d)));
  const legend = withColumns(c.legend ?? {}, values.map(String), width) as Obj;
  return { ...c, legend: { ...legend, values } };
}

function colorScale(c: Obj, rows: readonly MetricRow[], width: number): Obj {
  const field = c.field as string;
  const scale = c.scale as Obj;
  const domain = Array.isArray(scale.domain) ? scale.domain.map(String) : [];
  for (const r of rows) {
    const v = r[field];
    if (v !== undefined && v !== null && !domain.includes(String(v))) domain.push(String(v));
  }
  const legend = withColumns(c.legend, domain, width);
  return {
    ...c,
    scale: { ...scale, domain, range: seriesColors(domain) },
    ...(legend !== undefined ? { legend } : {}),
  };
}

/**
 * The finished spec of a definition: its rows selected from `metrics`, prepared by the
 * helper, bound to the helper's spec with the extra transforms first; a spec with inline
 * data is used as it is. An empty selection gives {@link emptyChart}.
 */
export function resolveChart(def: ChartDef, metrics: readonly MetricRow[]): ResolvedChart {
  if (!("helper" in def) && def.kind === undefined) {
    return { name: def.name, spec: { $schema: VEGA_LITE_SCHEMA, ...def.spec } };
  }
  return { name: def.name, spec: drawRows(def, selectRows(metrics, def)) };
}

function drawRows(def: ChartDef, selected: readonly MetricRow[]): VegaLiteSpec {
  const spec = "helper" in def ? chartSpec(def) : { data: { name: ROWS }, ...def.spec };
  const width = chartWidth(spec);
  if (selected.length === 0) {
    return emptyChart(
      spec.title,
      `no rows of ${describeSelection(def)} in metrics.jsonl: nothing to draw`,
      width,
    );
  }
  const field = valueField(def);
  if (field !== null && !selected.some((r) => typeof r[field] === "number")) {
    const given = "helper" in def ? (def.args as { ifEmpty?: unknown }).ifEmpty : undefined;
    const meta = selected.some((r) => r.device === "meta")
      ? " (the meta device computes no values)"
      : "";
    return emptyChart(
      spec.title,
      typeof given === "string"
        ? given
        : `no "${field}" values in the ${selected.length} rows of ${describeSelection(def)}` +
          `${meta}: nothing to draw`,
      width,
    );
  }
  const rows = "helper" in def ? prepareRows(def, selected) : selected;
  const transform = [...(def.transform ?? []), ...((spec.transform as unknown[]) ?? [])];
  return bindRows(
    { $schema: VEGA_LITE_SCHEMA, ...spec, ...(transform.length ? { transform } : {}) },
    rows,
  );
}

/**
 * A helper's chart drawn from rows you hold (e.g. in a notebook), every row or those
 * matching `where`: `await display(chartFromRows(lossCurves({ title: "loss" }), rows))`.
 */
export function chartFromRows(
  chart: ChartRecipe,
  rows: readonly MetricRow[],
  opts: Omit<ChartOptions, "kind"> = {},
): VegaLiteSpec {
  const def: ChartDef = { name: "chart", helper: chart.helper, args: chart.args, ...opts };
  checkRecipe(def, "chartFromRows");
  return drawRows(def, selectRows(rows, { where: opts.where }));
}

/** Parses `charts.json` (a list of definitions); errors name `source`. */
export function parseChartDefs(text: string, source: string): ChartDef[] {
  let defs: unknown;
  try {
    defs = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(defs)) throw new Error(`${source}: expected a list of chart definitions`);
  const names = new Set<string>();
  return defs.map((d, i) => {
    const where = `${source}: chart ${i + 1}`;
    if (d === null || typeof d !== "object" || typeof (d as ChartDef).name !== "string") {
      throw new Error(`${where}: expected an object with a "name"`);
    }
    const def = d as ChartDef;
    if (!NAME.test(def.name)) throw new Error(`${where}: bad chart name "${def.name}"`);
    if (names.has(def.name)) throw new Error(`${where}: chart "${def.name}" appears twice`);
    names.add(def.name);
    checkChartDef(def, `${source}: chart "${def.name}"`);
    return def;
  });
}
