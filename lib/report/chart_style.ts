/**
 * The look shared by the chart helpers of `charts.ts`: titles wrapped to the chart's width,
 * byte axes labelled in B/KiB/MiB/GiB, and colours — one per policy name (the same on every
 * chart), one per memory tag and one per step phase.
 */

import { TAGS } from "../device/allocator.ts";
import {
  PHASE_COLORS,
  POLICY_COLORS,
  SERIES_PALETTE,
  seriesColors,
  TAG_COLORS,
} from "./palette.ts";

export { POLICY_COLORS, SERIES_PALETTE, seriesColors };

/** The name of the data source a helper's spec draws from; rows are bound to it. */
export const ROWS = "rows";

/** Memory tags in stacking order, each with its colour (`palette.ts`). */
export const TAG_SCALE = {
  domain: [...TAGS] as string[],
  range: TAGS.map((t) => TAG_COLORS[t]),
};

/** Step phases (allocator timeline) with their colours; "other" is outside any phase. */
export const PHASE_SCALE = {
  domain: Object.keys(PHASE_COLORS),
  range: Object.values(PHASE_COLORS),
};

/**
 * The words of `text`, a parenthesised group ("(max |Δ| 4.77e-7)") joined into one unit when it
 * fits in `maxChars`, so a line never breaks inside it.
 */
function wrapUnits(text: string, maxChars: number): string[] {
  const words = text.split(/\s+/).filter((w) => w !== "");
  const units: string[] = [];
  for (let i = 0; i < words.length; i++) {
    if (words[i].startsWith("(") && !words[i].includes(")")) {
      let j = i;
      while (j < words.length - 1 && !words[j].includes(")")) j++;
      const group = words.slice(i, j + 1).join(" ");
      if (words[j].includes(")") && group.length <= maxChars) {
        units.push(group);
        i = j;
        continue;
      }
    }
    units.push(words[i]);
  }
  return units;
}

/**
 * Splits `text` into lines of at most `maxChars`, at spaces but not inside a parenthesised
 * group that fits on a line (a longer word stays whole).
 */
export function wrapText(text: string, maxChars: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of wrapUnits(text, maxChars)) {
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
function byteText(expr: string): string {
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
 * Axis label expression breaking a long category label into lines before " (" and " S=", and
 * after " + " (e.g. "MsT + recomputation + optimizer-in-backward" becomes three lines,
 * "llama2-tiny S=256" two).
 */
export const WRAP_LABEL_EXPR =
  "split(replace(replace(replace(datum.label, / \\(/g, '\\n('), / \\+ /g, ' +\\n'), / S=/g, " +
  "'\\nS='), '\\n')";
