/**
 * The look shared by the chart helpers of `charts.ts`: titles wrapped to the chart's width,
 * byte axes labelled in B/KiB/MiB/GiB, and colours — one per policy name (the same on every
 * chart), one per memory tag and one per step phase.
 */

import { TAGS } from "../device/allocator.ts";

/** The name of the data source a helper's spec draws from; rows are bound to it. */
export const ROWS = "rows";

/** Colours of the policies the workbench names; other names get {@link SERIES_PALETTE}. */
export const POLICY_COLORS: Readonly<Record<string, string>> = {
  "standard": "#e45756",
  "standard (HF)": "#ff9d98",
  "recomputation": "#f58518",
  "recomputation (HF)": "#ffbf79",
  "MsT": "#72b7b2",
  "MsT + recomputation": "#4c78a8",
  "MsT + recomputation + optimizer-in-backward": "#54a24b",
  "MsT + recomputation + checkpoint offload": "#17becf",
};

/** Colours for series without a fixed colour (Tableau 10 minus the fixed ones first). */
export const SERIES_PALETTE: readonly string[] = [
  "#b279a2",
  "#eeca3b",
  "#9d755d",
  "#bab0ac",
  "#88d27a",
  "#9ecae9",
  "#d6a5c9",
  "#79706e",
  ...Object.values(POLICY_COLORS),
];

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/**
 * A colour for each series name, in order: a known policy keeps its colour; any other name
 * starts from a palette slot picked by a hash of the name (so it is the same in every chart
 * and every run) and moves to the next free slot when that colour is taken.
 */
export function seriesColors(names: readonly string[]): string[] {
  const taken = new Set<string>();
  const out = names.map((n) => {
    const c = POLICY_COLORS[n];
    if (c) taken.add(c);
    return c;
  });
  return out.map((c, i) => {
    if (c) return c;
    const start = hash(names[i]) % SERIES_PALETTE.length;
    for (let k = 0; k < SERIES_PALETTE.length; k++) {
      const p = SERIES_PALETTE[(start + k) % SERIES_PALETTE.length];
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
    return SERIES_PALETTE[start]; // more series than colours: repeat
  });
}

/** Memory tags in stacking order, each with its colour. */
export const TAG_SCALE = {
  domain: [...TAGS] as string[],
  range: [
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#b279a2",
    "#e45756",
    "#eeca3b",
    "#9d755d",
    "#bab0ac",
    "#72b7b2",
    "#ff9da6",
  ].slice(0, TAGS.length),
};

/** Step phases (allocator timeline) with their colours; "other" is outside any phase. */
export const PHASE_SCALE = {
  domain: ["forward", "backward", "optimizer", "other"],
  range: ["#4c78a8", "#e45756", "#54a24b", "#9d9d9d"],
};

/** Splits `text` into lines of at most `maxChars`, at spaces (a longer word stays whole). */
export function wrapText(text: string, maxChars: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= maxChars) line += " " + word;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/**
 * A vega-lite title wrapped to `widthPx`, so a long title adds lines instead of widening the
 * SVG. The width of a line is vega's headless estimate (0.8 × font size per character: 13 px
 * title, 10 px subtitle), which the SVG's size follows.
 */
export function wrappedTitle(
  text: string,
  widthPx: number,
  subtitle?: string,
): Record<string, unknown> {
  const chars = (fontPx: number) => Math.max(20, Math.floor(widthPx / (0.8 * fontPx)));
  return {
    text: wrapText(text, chars(13)),
    anchor: "start",
    ...(subtitle ? { subtitle: wrapText(subtitle, chars(10)), subtitleColor: "#555" } : {}),
  };
}

/** How a helper formats a value axis: `"bytes"`, or a d3 format string (e.g. `",d"`). */
export type ValueFormat = "bytes" | string;

/** The vega signals of a byte axis (set by {@link byteUnitParams}). */
const UNIT = "byteUnit";
const UNIT_NAME = "byteUnitName";

/**
 * Vega-lite params choosing one unit (B, KiB, MiB or GiB) for a byte axis from the largest
 * value of `fields` in the bound rows (and `atLeast`, e.g. a budget line): the values are
 * divided by it, so ticks fall on round numbers of that unit.
 */
export function byteUnitParams(fields: readonly string[], atLeast = 0): Record<string, unknown>[] {
  const maxes = fields.map((f) => `(extent(pluck(data('${ROWS}'), ${JSON.stringify(f)}))[1] || 0)`);
  const max = `max(${[...maxes, String(atLeast)].join(", ")})`;
  return [
    {
      name: UNIT,
      expr: `${max} >= 1073741824 ? 1073741824 : ${max} >= 1048576 ? 1048576 : ` +
        `${max} >= 1024 ? 1024 : 1`,
    },
    {
      name: UNIT_NAME,
      expr:
        `${UNIT} == 1073741824 ? 'GiB' : ${UNIT} == 1048576 ? 'MiB' : ${UNIT} == 1024 ? 'KiB' : 'B'`,
    },
  ];
}

/** A vega expression: the bytes `expr` in the axis's unit (needs {@link byteUnitParams}). */
export function inByteUnit(expr: string): string {
  return `${expr} / ${UNIT}`;
}

/** A vega expression: `expr` (already in the unit) as text, e.g. "74.8 GiB". */
export function byteText(expr: string): string {
  return `format(${expr}, '.3~r') + ' ' + ${UNIT_NAME}`;
}

/** Axis properties for a value axis in the given format. */
export function valueAxis(format: ValueFormat | undefined): Record<string, unknown> {
  if (format === "bytes") return { labelExpr: byteText("datum.value") };
  return format ? { format } : {};
}

/** A vega expression: `expr` as label text in the given format. */
export function valueText(expr: string, format: ValueFormat | undefined): string {
  if (format === "bytes") return byteText(expr);
  return `format(${expr}, ${JSON.stringify(format ?? "~r")})`;
}

/**
 * Axis label expression breaking a long category label into lines before " (" and after
 * " + " (e.g. "MsT + recomputation + optimizer-in-backward" becomes three lines).
 */
export const WRAP_LABEL_EXPR =
  "split(replace(replace(datum.label, / \\(/g, '\\n('), / \\+ /g, ' +\\n'), '\\n')";
