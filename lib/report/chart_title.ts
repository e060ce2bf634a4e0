/** The title of a chart for report headings: the spec's `title` or the chart's name. */

import type { VegaLiteSpec } from "./json.ts";

/** The spec's title (string, lines or `{text}`), else `name`. */
export function chartTitle(name: string, spec: VegaLiteSpec): string {
  const t = spec.title as unknown;
  const text = (v: unknown): string | null =>
    typeof v === "string" ? v : Array.isArray(v) ? v.join(" ") : null;
  if (t && typeof t === "object" && !Array.isArray(t)) {
    return text((t as { text?: unknown }).text) ?? name;
  }
  return text(t) ?? name;
}
