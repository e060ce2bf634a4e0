/** The plain data types of run records and reports (no imports, so every report module can use them). */

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** One row of `metrics.jsonl`; by convention `kind` names the measurement. */
export type MetricRow = Record<string, Json | undefined>;

/** A vega-lite spec (a plain JSON object; data inline or from the source named "rows"). */
export type VegaLiteSpec = Record<string, unknown>;

/** A table for the report, e.g. the paper's numbers beside ours. */
export interface ReportTable {
  /** Table title. */
  title: string;
  /** Column headers. */
  columns: string[];
  /** Rows of cells, one per column (null is shown as "—"). */
  rows: (string | number | null)[][];
}
