/**
 * Formatting shared by the HTML and Markdown report builders: cell values, flattened key
 * figures, and metric rows grouped into tables by their `kind`.
 */

import type { Json, MetricRow, ReportTable } from "./records.ts";

/** A value as table text: integers as they are, other numbers to 4 significant digits. */
export function formatCell(v: Json | undefined): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6)
      ? v.toExponential(3)
      : String(Number(v.toPrecision(4)));
  }
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "yes" : "no";
  return JSON.stringify(v);
}

/** Key figures flattened to `a.b.c` → value pairs. */
export function flattenFigures(figures: Record<string, Json>, prefix = ""): [string, Json][] {
  const out: [string, Json][] = [];
  for (const [k, v] of Object.entries(figures)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      out.push(...flattenFigures(v as Record<string, Json>, key));
    } else out.push([key, v]);
  }
  return out;
}

/** A group of metric rows with the same `kind`. */
export interface MetricGroup {
  kind: string;
  /** Total rows of this kind. */
  count: number;
  /** A table of them, or null when there are more than the limit. */
  table: ReportTable | null;
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
    const columns: string[] = [];
    for (const r of rs) {
      for (const k of Object.keys(r)) if (k !== "kind" && !columns.includes(k)) columns.push(k);
    }
    return {
      kind,
      count: rs.length,
      table: {
        title: kind,
        columns,
        rows: rs.map((r) =>
          columns.map((c) => {
            const v = r[c];
            return v === undefined || v === null
              ? null
              : typeof v === "number" || typeof v === "string"
              ? v
              : formatCell(v);
          })
        ),
      },
    };
  });
}
