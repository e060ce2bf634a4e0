/**
 * Formatting shared by the HTML and Markdown report builders: numbers, flattened key
 * figures, and metric rows grouped into tables by their `kind`.
 *
 * Numbers keep their precision up to a sensible limit: integers exactly, other numbers to
 * {@link SIGNIFICANT_DIGITS} significant digits but never fewer than their integer digits
 * (1234567.89 → 1234568, not 1.235e+6), very small ones in exponent form. Nested values
 * (objects, arrays of objects) stay structured: the HTML builder draws them as nested
 * tables, the Markdown one as compact `key: value` text; neither shows raw JSON.
 */

import type { Json, MetricRow } from "./json.ts";

/** Significant digits of a non-integer in a report table. */
const SIGNIFICANT_DIGITS = 6;

/** Strips trailing zeros of a decimal fraction (`1.2500` → `1.25`, `3.000` → `3`). */
function trimZeros(s: string): string {
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

/**
 * A number as table text: integers exactly; others to {@link SIGNIFICANT_DIGITS} significant
 * digits without losing integer digits; below 1e-4 (or from 1e21) in exponent form.
 */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Object.is(v, -0)) return "0";
  if (Number.isInteger(v) && Math.abs(v) < 1e21) return String(v);
  const a = Math.abs(v);
  if (a < 1e-4 || a >= 1e21) {
    const [m, e] = v.toExponential(SIGNIFICANT_DIGITS - 1).split("e");
    return `${trimZeros(m)}e${e}`;
  }
  const intDigits = a >= 1 ? Math.floor(Math.log10(a)) + 1 : 0;
  const leadingZeros = a < 1 ? -Math.floor(Math.log10(a)) - 1 : 0;
  const decimals = Math.max(0, SIGNIFICANT_DIGITS - intDigits) + leadingZeros;
  const s = trimZeros(v.toFixed(Math.min(decimals, 100)));
  return s === "-0" ? "0" : s;
}

/** Whether `v` is a plain JSON object (not null, not an array). */
export function isJsonObject(v: unknown): v is { [k: string]: Json } {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Whether `v` is a string, number, boolean or null. */
export function isJsonScalar(v: unknown): v is string | number | boolean | null {
  return v === null || ["string", "number", "boolean"].includes(typeof v);
}

/**
 * A value as one line of text: scalars formatted (null → "—", booleans yes/no), arrays of
 * scalars joined with ", ", objects as `key: value; …`, arrays of objects as `[…]; […]`.
 */
export function formatCell(v: Json | undefined): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (Array.isArray(v)) {
    if (v.every(isJsonScalar)) return v.map(formatCell).join(", ");
    return v.map((x) => `[${formatCell(x)}]`).join("; ");
  }
  return Object.entries(v).map(([k, x]) => `${k}: ${formatCell(x)}`).join("; ");
}

/** Key figures flattened to `a.b.c` → value pairs (arrays are kept whole). */
export function flattenFigures(figures: Record<string, Json>, prefix = ""): [string, Json][] {
  const out: [string, Json][] = [];
  for (const [k, v] of Object.entries(figures)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isJsonObject(v) && Object.keys(v).length > 0) {
      out.push(...flattenFigures(v, key));
    } else out.push([key, v]);
  }
  return out;
}

/** A table whose cells may be any JSON value (drawn structured by the builders). */
export interface ValueTable {
  columns: string[];
  rows: Json[][];
}

/** The columns of a list of objects: every key, in order of first appearance. */
export function columnsOf(rows: readonly Record<string, unknown>[], skip: string[] = []): string[] {
  const columns: string[] = [];
  for (const r of rows) {
    for (const k of Object.keys(r)) if (!skip.includes(k) && !columns.includes(k)) columns.push(k);
  }
  return columns;
}

/** A group of metric rows with the same `kind`. */
export interface MetricGroup {
  kind: string;
  /** Total rows of this kind. */
  count: number;
  /** A table of them, or null when there are more than the limit. */
  table: ValueTable | null;
}

/** Groups metric rows by `kind`; kinds with more than `maxRows` rows are only counted. */
export function metricGroups(rows: readonly MetricRow[], maxRows = 40): MetricGroup[] {
  const groups = new Map<string, MetricRow[]>();
  for (const r of rows) {
    const kind = typeof r.kind === "string" ? r.kind : "metrics";
    let g = groups.get(kind);
    if (!g) groups.set(kind, g = []);
    g.push(r);
  }
  return [...groups].map(([kind, rs]) => {
    if (rs.length > maxRows) return { kind, count: rs.length, table: null };
    const columns = columnsOf(rs, ["kind"]);
    return {
      kind,
      count: rs.length,
      table: { columns, rows: rs.map((r) => columns.map((c) => r[c] ?? null)) },
    };
  });
}
