/**
 * Chart helpers: each takes field names and a few options (all JSON) and returns a
 * {@link ChartRecipe}, the helper's name and arguments. {@link chartSpec} turns a recipe into
 * a vega-lite spec with no data: it draws from the data source named `rows`, which
 * `chart_defs.ts` binds to the `metrics.jsonl` rows of a kind at render time. The recipe, not
 * the finished spec, is what a run stores (`charts.json`), so a style change here shows in
 * `deno task report <dir>` without re-running.
 *
 * | helper            | draws                                                          |
 * |-------------------|----------------------------------------------------------------|
 * | `barsWithReference` | a value per category (optionally grouped), reference ticks   |
 * | `stackedPeak`     | bytes stacked by tag per category, a budget line                |
 * | `metricVsSeq`     | a metric against S, one line per series (log axes optional)     |
 * | `lossCurves`      | loss per step, one curve per series, a baseline drawn underneath |
 * | `memoryTimeline`  | live bytes through a step, coloured by phase, one panel per series |
 *
 * @example Max S per policy beside the paper's values
 * ```ts
 * import { barsWithReference, chartSpec } from "./charts.ts";
 *
 * const recipe = barsWithReference({
 *   title: "Llama3-8B: longest sequence in 80 GiB",
 *   x: "policy",
 *   y: "maxSeq",
 *   reference: "paper",
 *   referenceTitle: "paper (1× A100)",
 * });
 * const spec = chartSpec(recipe); // data: { name: "rows" }
 * ```
 */

import type { Json, MetricRow, VegaLiteSpec } from "./json.ts";
import {
  byteUnitParams,
  inByteUnit,
  PHASE_SCALE,
  ROWS,
  TAG_SCALE,
  valueAxis,
  type ValueFormat,
  valueText,
  WRAP_LABEL_EXPR,
  wrappedTitle,
} from "./chart_style.ts";
import { SERIES_DASHES, SERIES_SHAPES } from "./palette.ts";

/** A helper call as stored in `charts.json`: the helper's name and its JSON arguments. */
export interface ChartRecipe {
  /** The helper's name (a key of {@link CHART_HELPERS}). */
  helper: HelperName;
  /** Its arguments: field names and options, plain JSON. */
  args: Record<string, Json | undefined>;
}

/** Title, size and (for series charts) the order of the series. */
export interface ChartBaseArgs {
  /** The title; wrapped to the chart's width. */
  title: string;
  /** A second, smaller title line (wrapped too). */
  subtitle?: string;
  /** Plot width in pixels. */
  width?: number;
  /** Plot height in pixels. */
  height?: number;
  /**
   * What the empty state says when no row has a value to draw (e.g. "no losses on the meta
   * device: it computes no values"); default: which field is missing from how many rows.
   */
  ifEmpty?: string;
}

/** Arguments of {@link barsWithReference}. */
export interface BarsArgs extends ChartBaseArgs {
  /** Category field (one group of bars per value). */
  x: string;
  /** Value field (bar height). */
  y: string;
  /** Field splitting a category into side-by-side bars (coloured by it). */
  group?: string;
  /** Field of reference values, drawn as black ticks over the bars (null: none). */
  reference?: string;
  /** Field of the reference's label text (default: the value, formatted). */
  referenceLabel?: string;
  /** The reference's short name in the bar labels (default "ref", e.g. "paper"). */
  referenceName?: string;
  /** What the ticks are, shown in the subtitle (default the short name). */
  referenceTitle?: string;
  /** Category order (default: the rows' order). */
  order?: string[];
  /** Value axis title (default: the field). */
  yTitle?: string;
  /** Value format: "bytes" or a d3 format (default ",d"). */
  yFormat?: ValueFormat;
  /** Log-scale value axis. */
  yLog?: boolean;
}

/** Arguments of {@link stackedPeak}. */
export interface StackedPeakArgs extends ChartBaseArgs {
  /** Category field, one bar each (e.g. "policy"). */
  y: string;
  /** Field naming the part of the stack (e.g. "tag"). */
  stack: string;
  /** Bytes field of each part. */
  x: string;
  /** A budget line, in bytes. */
  budget?: number;
  /** The budget line's label (default "budget <bytes>"). */
  budgetLabel?: string;
  /** Category order (default: the rows' order). */
  order?: string[];
  /** Bytes axis title (default "memory at the peak"). */
  xTitle?: string;
  /**
   * Field naming the phase of each bar's peak (e.g. "peakPhase"): written after the bar's
   * total ("74.8 GiB, peak in backward"), so bars peaking in different phases read as such.
   */
  phase?: string;
}

/** Arguments of {@link metricVsSeq}. */
export interface MetricVsSeqArgs extends ChartBaseArgs {
  /** The metric's field. */
  y: string;
  /** Sequence-length field (default "seq"). */
  x?: string;
  /** Series field, one line each (default "policy"). */
  series?: string;
  /** Series order (default: the rows' order). */
  order?: string[];
  /** Sequence axis title (default "sequence length S (tokens)"). */
  xTitle?: string;
  /** Metric axis title (default: the field). */
  yTitle?: string;
  /** Value format: "bytes" or a d3 format. */
  yFormat?: ValueFormat;
  /** Log₂ sequence axis (default true). */
  xLog?: boolean;
  /** Log-scale metric axis. */
  yLog?: boolean;
  /**
   * A boolean field: rows where it is true are drawn as large open diamonds labelled
   * `highlightLabel`, not joined to their series' line (e.g. the M an automatic rule chose).
   */
  highlight?: string;
  /** The label beside highlighted points (default: the field's name). */
  highlightLabel?: string;
  /** Fields of the low and high end of an error bar around each point (e.g. min and max). */
  yMin?: string;
  /** See `yMin`. */
  yMax?: string;
  /** What the error bars are, in the subtitle (default "error bars: lowest to highest measurement"). */
  yRange?: string;
}

/** Arguments of {@link lossCurves}. */
export interface LossCurvesArgs extends ChartBaseArgs {
  /** Step field (default "step"). */
  x?: string;
  /** Loss field (default "loss"). */
  y?: string;
  /** Series field, one curve each (default "policy"). */
  series?: string;
  /**
   * The series drawn wide and pale underneath; the others are drawn thin and dashed on top,
   * so curves that coincide all stay visible (default: every curve drawn alike).
   */
  baseline?: string;
  /** Series order (default: the rows' order). */
  order?: string[];
  /** Loss axis title (default: the field). */
  yTitle?: string;
}

/** Arguments of {@link memoryTimeline}. */
export interface MemoryTimelineArgs extends ChartBaseArgs {
  /** Event index field (default "index"). */
  x?: string;
  /** Live bytes field (default "liveBytes"). */
  y?: string;
  /** Phase field (default "phase"; empty means "other"). */
  phase?: string;
  /** Field giving one panel each (default "policy"). */
  facet?: string;
  /** Panel order (default: by name). */
  order?: string[];
  /** Points per panel at most; min and max of each bucket are kept (default 3000). */
  maxPoints?: number;
}

type Spec = VegaLiteSpec;

const base = (a: ChartBaseArgs, w: number, subtitle = a.subtitle) => ({
  title: wrappedTitle(a.title, w, subtitle),
  data: { name: ROWS },
});

/** A vega expression: the largest value of `fields` in the bound rows. */
function maxExpr(fields: readonly string[]): string {
  const m = fields.map((f) => `(extent(pluck(data('${ROWS}'), ${JSON.stringify(f)}))[1] || 0)`);
  return m.length === 1 ? m[0] : `max(${m.join(", ")})`;
}

/**
 * Loss rows with `__dodgeX`: the step shifted by the series' place in the order (at most ±0.2
 * of a step), so the points of curves that coincide are drawn side by side.
 */
function prepareLoss(rows: readonly MetricRow[], a: LossCurvesArgs): MetricRow[] {
  const [x, series] = [a.x ?? "step", a.series ?? "policy"];
  const names = [...(a.order ?? [])];
  for (const r of rows) if (!names.includes(String(r[series]))) names.push(String(r[series]));
  const xs = [...new Set(rows.map((r) => Number(r[x])))].sort((p, q) => p - q);
  const gap = xs.length > 1 ? Math.min(...xs.slice(1).map((v, i) => v - xs[i])) : 1;
  const each = Math.min(0.4 / Math.max(names.length - 1, 1), 0.08) * gap;
  return rows.map((r) => ({
    ...r,
    __dodgeX: Number(r[x]) + (names.indexOf(String(r[series])) - (names.length - 1) / 2) * each,
  }));
}

/** A vega expression: the largest bar of a stacked chart (rows prepared by `prepareStacked`). */
function maxTotalExpr(a: StackedPeakArgs): string {
  return `max(${maxExpr(["__barTotal"])}, ${a.budget ?? 0})`;
}

/** Each row with the total of its bar (`__barTotal`), for the axis' room. */
function prepareStacked(rows: readonly MetricRow[], a: StackedPeakArgs): MetricRow[] {
  const totals = new Map<string, number>();
  for (const r of rows) {
    const k = JSON.stringify(r[a.y] ?? null);
    totals.set(k, (totals.get(k) ?? 0) + Number(r[a.x] ?? 0));
  }
  return rows.map((r) => ({ ...r, __barTotal: totals.get(JSON.stringify(r[a.y] ?? null))! }));
}

/** On a log axis, labels only at 1, 2 and 5 × 10^k (the grid keeps every tick). */
function logAxis(axis: Record<string, unknown>, log: boolean | undefined) {
  if (!log) return axis;
  const lead = "round(datum.value / pow(10, floor(log(datum.value) / LN10 + 1e-9)) * 1e6) / 1e6";
  const text = (axis.labelExpr as string | undefined) ?? "datum.label";
  return { ...axis, labelExpr: `indexof([1, 2, 5], ${lead}) >= 0 ? ${text} : ''` };
}

/**
 * Colour by a series field. The scale has a domain (the order, or null) but no range: when
 * rows are bound, every series name gets its colour from `seriesColors` (`chart_defs.ts`).
 * The legend sits below the plot, in as many columns as fit its width (set at binding), so
 * it is never wider than the chart.
 */
function seriesColor(field: string, order: string[] | undefined, legend = true) {
  return {
    field,
    type: "nominal",
    scale: { domain: order ?? null },
    ...(legend ? { legend: bottomLegend() } : { legend: null }),
  };
}

/** A legend below the plot; `chart_defs.ts` sets its columns to fit the chart's width. */
function bottomLegend(): Record<string, Json> {
  return {
    orient: "bottom",
    direction: "horizontal",
    title: null,
    labelLimit: 0,
    symbolOpacity: 1,
    symbolStrokeWidth: 2,
  };
}

/**
 * A shape and a dash per series (same field and domain as the colour, so the legend shows
 * all three): coinciding curves still show each series' points.
 */
function seriesMarks(field: string, order: string[] | undefined) {
  return {
    shape: { field, type: "nominal", scale: { domain: order ?? null, range: SERIES_SHAPES } },
    strokeDash: {
      field,
      type: "nominal",
      scale: { domain: order ?? null, range: SERIES_DASHES },
    },
  };
}

/**
 * Bars of `y` per category `x` (split by `group` when given), with reference values as black
 * ticks and their labels; value labels above the bars.
 */
export function barsWithReference(args: BarsArgs): ChartRecipe {
  return recipe("barsWithReference", args);
}

function barsSpec(a: BarsArgs): Spec {
  // wide enough for each category's wrapped label (about 125 px each), unless a width is given
  const [w, h] = [a.width ?? Math.max(720, 125 * (a.order?.length ?? 0)), a.height ?? 300];
  const fmt = a.yFormat ?? ",d";
  const bytes = fmt === "bytes";
  const f = (name: string) => `datum[${JSON.stringify(name)}]`;
  const v = bytes ? "__value" : a.y;
  const r = a.reference && (bytes ? "__reference" : a.reference);
  const refName = a.referenceName ?? "ref";
  const subtitle = [
    a.subtitle,
    a.reference && `black ticks: ${a.referenceTitle ?? refName}`,
  ].filter(Boolean).join("; ");
  const offset = a.group ? { xOffset: { field: a.group, type: "nominal", sort: null } } : {};
  const maxOf = maxExpr([a.y, ...(a.reference ? [a.reference] : [])]);
  const minOf = `(extent(pluck(data('${ROWS}'), ${JSON.stringify(a.y)}))[0] || 1)`;
  const unit = (e: string) => bytes ? inByteUnit(e) : e;
  const transform: Spec[] = [];
  if (bytes) {
    transform.push({ calculate: inByteUnit(f(a.y)), as: v });
    if (a.reference) transform.push({ calculate: inByteUnit(f(a.reference)), as: r });
  }
  // labels above the higher of the bar and its reference tick: the value, and over it the
  // reference ("paper ≈5K") when there is one
  transform.push({ calculate: valueText(f(v), fmt), as: "__label" });
  if (r) {
    const refText = a.referenceLabel ? f(a.referenceLabel) : valueText(f(r), fmt);
    transform.push(
      {
        calculate: `isValid(${f(r)}) ? ${JSON.stringify(refName)} + ' ' + ${refText} : null`,
        as: "__refLabel",
      },
      { calculate: `isValid(${f(r)}) ? max(${f(v)}, ${f(r)}) : ${f(v)}`, as: "__labelY" },
    );
  } else {
    transform.push({ calculate: "null", as: "__refLabel" }, { calculate: f(v), as: "__labelY" });
  }
  if (a.yLog) {
    // a zero (e.g. nothing fits) has no place on a log axis: its label sits at the bottom
    transform.push(
      {
        calculate: `datum.__labelY > 0 ? datum.__labelY : ${unit(minOf)} / 2`,
        as: "__labelY",
      },
      {
        calculate: `${f(v)} > 0 ? datum.__label : datum.__label + ' (nothing fits)'`,
        as: "__label",
      },
    );
  }
  const label = (field: string, dy: number): Spec => ({
    transform: [{ filter: `isValid(datum.${field})` }],
    mark: { type: "text", dy, fontSize: 10, baseline: "bottom" },
    encoding: { y: { field: "__labelY", type: "quantitative" }, text: { field } },
  });
  // side-by-side bars are too narrow for level labels: one vertical label per bar, the value
  // and the reference together ("126,976 · paper 128,000")
  const vertical: Spec = {
    transform: [{
      calculate: "isValid(datum.__refLabel) ? datum.__label + ' · ' + datum.__refLabel : " +
        "datum.__label",
      as: "__vLabel",
    }],
    mark: { type: "text", angle: 270, align: "left", baseline: "middle", dx: 3, fontSize: 10 },
    encoding: { y: { field: "__labelY", type: "quantitative" }, text: { field: "__vLabel" } },
  };
  const layers: Spec[] = [
    {
      mark: { type: "bar" },
      encoding: { color: seriesColor(a.group ?? a.x, a.group ? undefined : a.order, !!a.group) },
    },
    ...(a.group ? [vertical] : [label("__label", -3), label("__refLabel", -15)]),
  ];
  if (r) {
    layers.push({
      transform: [{ filter: `isValid(${f(r)})` }],
      mark: { type: "tick", color: "#111", thickness: 2.5 },
      encoding: { y: { field: r, type: "quantitative" } },
    });
  }
  return {
    ...base(a, w, subtitle || undefined),
    ...(bytes ? { params: byteUnitParams([a.y, ...(a.reference ? [a.reference] : [])]) } : {}),
    width: w,
    height: h,
    transform,
    encoding: {
      x: {
        field: a.x,
        type: "nominal",
        sort: a.order ?? null,
        title: null,
        axis: { labelAngle: 0, labelExpr: WRAP_LABEL_EXPR, labelLimit: 400 },
      },
      ...offset,
      y: {
        field: v,
        type: "quantitative",
        title: a.yTitle ?? a.y,
        // unstacked: side by side, and a log axis then starts at the data, not at 0
        stack: null,
        // room above the highest bar for its two label lines
        scale: {
          ...(a.yLog ? { type: "log", domainMin: { expr: `${unit(minOf)} / 2` } } : {}),
          domainMax: {
            expr: `${unit(maxOf)} * ${a.group ? (a.yLog ? 12 : 1.5) : (a.yLog ? 2 : 1.12)}`,
          },
        },
        axis: logAxis(valueAxis(fmt), a.yLog),
      },
    },
    layer: layers,
  };
}

/**
 * Horizontal bars of bytes per category, stacked by `stack` (memory tags keep their colours
 * and order), the total at the end of each bar, and a dashed budget line.
 */
export function stackedPeak(args: StackedPeakArgs): ChartRecipe {
  return recipe("stackedPeak", args);
}

function stackedPeakSpec(a: StackedPeakArgs): Spec {
  const [w, h] = [a.width ?? 560, a.height ?? 200];
  const y = {
    field: a.y,
    type: "nominal",
    sort: a.order ?? null,
    title: null,
    axis: { labelLimit: 400 },
  };
  const layers: Spec[] = [
    {
      mark: "bar",
      encoding: {
        y,
        x: {
          field: "__x",
          type: "quantitative",
          stack: "zero",
          title: a.xTitle ?? "memory at the peak",
          axis: valueAxis("bytes"),
          // room right of the longest bar for its total (and phase)
          scale: {
            domainMax: { expr: `${inByteUnit(maxTotalExpr(a))} * ${a.phase ? 1.45 : 1.2}` },
          },
        },
        color: {
          field: a.stack,
          type: "nominal",
          scale: TAG_SCALE,
          sort: TAG_SCALE.domain,
          legend: bottomLegend(),
        },
        order: { field: "__stackOrder", type: "quantitative" },
      },
    },
    {
      transform: [
        {
          aggregate: [{ op: "sum", field: "__x", as: "__total" }],
          groupby: [a.y, ...(a.phase ? [a.phase] : [])],
        },
        {
          calculate: valueText("datum.__total", "bytes") +
            (a.phase ? ` + ', peak in ' + datum[${JSON.stringify(a.phase)}]` : ""),
          as: "__totalText",
        },
      ],
      mark: { type: "text", align: "left", dx: 4, fontSize: 10 },
      encoding: {
        y,
        x: { field: "__total", type: "quantitative" },
        text: { field: "__totalText" },
      },
    },
  ];
  if (a.budget !== undefined) {
    layers.push({
      data: { values: [{ __budget: a.budget }] },
      transform: [
        { calculate: inByteUnit("datum.__budget"), as: "__x" },
        {
          calculate: `${JSON.stringify(a.budgetLabel ?? "budget")} + ' ' + ` +
            valueText("datum.__x", "bytes"),
          as: "__label",
        },
      ],
      layer: [
        {
          mark: { type: "rule", color: "#c00", strokeDash: [4, 3] },
          encoding: { x: { field: "__x", type: "quantitative" } },
        },
        {
          mark: { type: "text", color: "#c00", align: "left", dx: 3, y: -5, fontSize: 10 },
          encoding: { x: { field: "__x", type: "quantitative" }, text: { field: "__label" } },
        },
      ],
    });
  }
  return {
    ...base(a, w),
    params: byteUnitParams([a.x], a.budget ?? 0),
    width: w,
    height: h,
    transform: [
      { calculate: inByteUnit(`datum[${JSON.stringify(a.x)}]`), as: "__x" },
      {
        calculate: `indexof(${JSON.stringify(TAG_SCALE.domain)}, datum[${
          JSON.stringify(a.stack)
        }])`,
        as: "__stackOrder",
      },
    ],
    layer: layers,
  };
}

/** One line per series of a metric against the sequence length (log₂ S axis by default). */
export function metricVsSeq(args: MetricVsSeqArgs): ChartRecipe {
  return recipe("metricVsSeq", args);
}

function metricVsSeqSpec(a: MetricVsSeqArgs): Spec {
  const [w, h] = [a.width ?? 480, a.height ?? 280];
  const xField = a.x ?? "seq";
  const bytes = a.yFormat === "bytes";
  const y = bytes ? "__y" : a.y;
  const lines = highlightLayers(a.highlight, a.highlightLabel);
  const layers: Spec[] = "layer" in lines ? lines.layer as Spec[] : [lines];
  if (a.yMin && a.yMax) {
    const f = (n: string) => `datum[${JSON.stringify(n)}]`;
    layers.unshift({
      transform: [
        { filter: `isValid(${f(a.yMin)}) && isValid(${f(a.yMax)})` },
        { calculate: bytes ? inByteUnit(f(a.yMin)) : f(a.yMin), as: "__lo" },
        { calculate: bytes ? inByteUnit(f(a.yMax)) : f(a.yMax), as: "__hi" },
      ],
      mark: { type: "errorbar", ticks: true },
      encoding: {
        y: { field: "__lo", type: "quantitative", title: a.yTitle ?? a.y },
        y2: { field: "__hi" },
      },
    });
  }
  return {
    ...base(
      a,
      w,
      [a.subtitle, a.yMin && a.yMax && (a.yRange ?? "error bars: lowest to highest measurement")]
        .filter(Boolean).join("; ") || undefined,
    ),
    ...(bytes ? { params: byteUnitParams([a.y]) } : {}),
    width: w,
    height: h,
    transform: [
      { filter: `isValid(datum[${JSON.stringify(a.y)}])` },
      ...(bytes ? [{ calculate: inByteUnit(`datum[${JSON.stringify(a.y)}]`), as: y }] : []),
    ],
    layer: layers,
    encoding: {
      x: {
        field: xField,
        type: "quantitative",
        title: a.xTitle ?? "sequence length S (tokens)",
        scale: a.xLog === false ? { zero: false } : { type: "log", base: 2 },
        // a tick at every S measured
        axis: {
          format: ",d",
          values: { expr: `pluck(data('${ROWS}'), ${JSON.stringify(xField)})` },
        },
      },
      y: {
        field: y,
        type: "quantitative",
        title: a.yTitle ?? a.y,
        scale: a.yLog ? { type: "log" } : { zero: false },
        axis: logAxis(valueAxis(a.yFormat), a.yLog),
      },
      color: seriesColor(a.series ?? "policy", a.order),
    },
  };
}

/** One line mark, or (with a highlight field) the line without those rows plus marked points. */
function highlightLayers(field: string | undefined, label = field): Spec {
  if (field === undefined) return { mark: { type: "line", point: true } };
  const on = `datum[${JSON.stringify(field)}] === true`;
  return {
    layer: [
      { transform: [{ filter: `!(${on})` }], mark: { type: "line", point: true } },
      {
        transform: [{ filter: on }],
        mark: { type: "point", shape: "diamond", size: 220, filled: false, strokeWidth: 2.5 },
      },
      {
        transform: [{ filter: on }],
        mark: { type: "text", align: "left", dx: 9, dy: -9, fontSize: 11 },
        encoding: { text: { value: label ?? "" } },
      },
    ],
  };
}

/** Loss against step, one curve per series, the `baseline` series wide underneath. */
export function lossCurves(args: LossCurvesArgs): ChartRecipe {
  return recipe("lossCurves", args);
}

function lossCurvesSpec(a: LossCurvesArgs): Spec {
  const [w, h] = [a.width ?? 640, a.height ?? 320];
  const series = a.series ?? "policy";
  const y = a.y ?? "loss";
  const isBase = `datum[${JSON.stringify(series)}] === ${JSON.stringify(a.baseline ?? null)}`;
  // every curve: its own colour, dash and point shape, so coinciding curves stay visible
  const marks = seriesMarks(series, a.order);
  const top: Spec[] = [
    { mark: { type: "line", strokeWidth: 1.5 }, encoding: { strokeDash: marks.strokeDash } },
    {
      // each series' points shifted a little along x, so points of equal curves sit side by side
      mark: { type: "point", filled: false, size: 50, strokeWidth: 1.5 },
      encoding: {
        shape: marks.shape,
        x: { field: "__dodgeX", type: "quantitative", title: a.x ?? "step" },
      },
    },
  ];
  const layers: Spec[] = a.baseline === undefined ? top : [
    {
      transform: [{ filter: isBase }],
      mark: { type: "line", strokeWidth: 7, opacity: 0.35 },
    },
    ...top,
  ];
  return {
    ...base(
      a,
      w,
      [a.subtitle, "each series has its own dash and point shape, points set side by side"]
        .filter(Boolean).join("; "),
    ),
    width: w,
    height: h,
    transform: [{ filter: `isValid(datum[${JSON.stringify(y)}])` }],
    encoding: {
      x: { field: a.x ?? "step", type: "quantitative", axis: { tickMinStep: 1 } },
      y: { field: y, type: "quantitative", title: a.yTitle ?? y, scale: { zero: false } },
      color: seriesColor(series, a.order),
    },
    layer: layers,
  };
}

/**
 * Live bytes through a training step (step line), coloured by phase, one panel per `facet`
 * value, each downsampled to `maxPoints` keeping every bucket's min and max.
 */
export function memoryTimeline(args: MemoryTimelineArgs): ChartRecipe {
  return recipe("memoryTimeline", args);
}

function memoryTimelineSpec(a: MemoryTimelineArgs): Spec {
  const [w, h] = [a.width ?? 640, a.height ?? 160];
  const x = a.x ?? "index";
  const y = a.y ?? "liveBytes";
  return {
    ...base(a, w),
    params: byteUnitParams([y]),
    transform: [{ calculate: inByteUnit(`datum[${JSON.stringify(y)}]`), as: "__y" }],
    facet: {
      row: { field: a.facet ?? "policy", type: "nominal", title: null, sort: a.order ?? null },
    },
    resolve: { scale: { x: "independent" } },
    spec: {
      width: w,
      height: h,
      mark: { type: "line", interpolate: "step-after", strokeWidth: 1.2 },
      encoding: {
        x: { field: x, type: "quantitative", title: "allocator event (alloc/free) index" },
        y: { field: "__y", type: "quantitative", title: "live memory", axis: valueAxis("bytes") },
        color: {
          field: a.phase ?? "phase",
          type: "nominal",
          scale: PHASE_SCALE,
          legend: bottomLegend(),
        },
      },
    },
  };
}

/**
 * At most about `maxPoints` rows per value of `group`, in `x` order: each bucket of rows keeps
 * its lowest and highest `y` (in order), so peaks and troughs survive.
 */
export function downsampleMinMax(
  rows: readonly MetricRow[],
  opts: { x: string; y: string; group?: string; maxPoints: number },
): MetricRow[] {
  const groups = new Map<Json | undefined, MetricRow[]>();
  for (const r of rows) {
    const k = opts.group === undefined ? null : r[opts.group];
    let g = groups.get(k);
    if (!g) groups.set(k, g = []);
    g.push(r);
  }
  const num = (r: MetricRow, f: string) => Number(r[f] ?? 0);
  const out: MetricRow[] = [];
  for (const g of groups.values()) {
    const pts = [...g].sort((p, q) => num(p, opts.x) - num(q, opts.x));
    if (pts.length <= opts.maxPoints) {
      out.push(...pts);
      continue;
    }
    const size = Math.ceil(pts.length / Math.max(1, Math.floor(opts.maxPoints / 2)));
    for (let b = 0; b < pts.length; b += size) {
      let lo = b, hi = b;
      for (let i = b; i < Math.min(b + size, pts.length); i++) {
        if (num(pts[i], opts.y) < num(pts[lo], opts.y)) lo = i;
        if (num(pts[i], opts.y) > num(pts[hi], opts.y)) hi = i;
      }
      if (lo === hi) out.push(pts[lo]);
      else out.push(pts[Math.min(lo, hi)], pts[Math.max(lo, hi)]);
    }
  }
  return out;
}

function prepareTimeline(rows: readonly MetricRow[], a: MemoryTimelineArgs): MetricRow[] {
  const [x, y, phase, facet] = [
    a.x ?? "index",
    a.y ?? "liveBytes",
    a.phase ?? "phase",
    a.facet ?? "policy",
  ];
  // only the fields drawn, so the inlined data of charts/<name>.vl.json stays small
  const slim = rows.map((r) => ({
    [x]: r[x],
    [y]: r[y],
    [phase]: typeof r[phase] === "string" && r[phase] !== "" ? r[phase] : "other",
    [facet]: r[facet],
  }));
  return downsampleMinMax(slim, { x, y, group: facet, maxPoints: a.maxPoints ?? 3000 });
}

/** A helper's spec builder and its optional row preparation (both re-run at report time). */
interface HelperDef {
  // deno-lint-ignore no-explicit-any
  spec(args: any): Spec;
  // deno-lint-ignore no-explicit-any
  prepare?(rows: readonly MetricRow[], args: any): MetricRow[];
  /** Argument names that must be present. */
  required: string[];
}

/** The name of a chart helper. */
export type HelperName =
  | "barsWithReference"
  | "stackedPeak"
  | "metricVsSeq"
  | "lossCurves"
  | "memoryTimeline";

/** The helpers by name: what `charts.json` refers to. */
export const CHART_HELPERS = {
  barsWithReference: { spec: barsSpec, required: ["title", "x", "y"] },
  stackedPeak: {
    spec: stackedPeakSpec,
    prepare: prepareStacked,
    required: ["title", "y", "stack", "x"],
  },
  metricVsSeq: { spec: metricVsSeqSpec, required: ["title", "y"] },
  lossCurves: { spec: lossCurvesSpec, prepare: prepareLoss, required: ["title"] },
  memoryTimeline: { spec: memoryTimelineSpec, prepare: prepareTimeline, required: ["title"] },
} satisfies Record<HelperName, HelperDef>;

function recipe(helper: HelperName, args: object): ChartRecipe {
  const r = { helper, args: args as ChartRecipe["args"] };
  checkRecipe(r, `${helper}()`);
  return r;
}

function isJson(v: unknown): boolean {
  if (v === null || typeof v === "string" || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isJson);
  if (typeof v === "object") {
    return Object.values(v as object).every((x) => x === undefined || isJson(x));
  }
  return false;
}

/** Checks a recipe (e.g. one read from `charts.json`); errors name `where`. */
export function checkRecipe(r: ChartRecipe, where: string): void {
  const def = (CHART_HELPERS as Record<string, HelperDef>)[r.helper];
  if (!def) {
    throw new Error(
      `${where}: no chart helper "${r.helper}" in lib/report/charts.ts ` +
        `(known: ${Object.keys(CHART_HELPERS).join(", ")})`,
    );
  }
  if (r.args === null || typeof r.args !== "object" || Array.isArray(r.args)) {
    throw new Error(`${where}: the arguments of ${r.helper} must be an object`);
  }
  for (const k of def.required) {
    if (r.args[k] === undefined || r.args[k] === null) {
      throw new Error(`${where}: ${r.helper} needs "${k}"`);
    }
  }
  if (!isJson(r.args)) {
    throw new Error(
      `${where}: the arguments of ${r.helper} must be plain JSON (finite numbers, strings, ` +
        `booleans, arrays, objects): they are stored in charts.json and re-run at report time`,
    );
  }
}

/** True when `v` is a helper's recipe (rather than a plain vega-lite spec). */
export function isChartRecipe(v: unknown): v is ChartRecipe {
  return v !== null && typeof v === "object" && typeof (v as ChartRecipe).helper === "string" &&
    "args" in (v as object);
}

/** The helper's vega-lite spec, drawing from the data source `rows` (no data inline). */
export function chartSpec(r: ChartRecipe): VegaLiteSpec {
  checkRecipe(r, "chart");
  const def: HelperDef = CHART_HELPERS[r.helper];
  return def.spec(r.args);
}

/** The rows a helper draws, after its preparation (e.g. the timeline's downsampling). */
export function prepareRows(r: ChartRecipe, rows: readonly MetricRow[]): MetricRow[] {
  const def: HelperDef = CHART_HELPERS[r.helper];
  return def.prepare ? def.prepare(rows, r.args) : [...rows];
}
