/**
 * Renders a vega-lite spec to SVG headless: vega-lite compiles it to a vega spec, vega
 * renders it with no canvas (`renderer: "none"`, text widths estimated). Works in plain
 * Deno and in the Deno Jupyter kernel; no network (data must be inline).
 *
 * A title wider than its chart would widen the SVG and leave a blank margin beside the plot,
 * so a long title is broken into lines (vega-lite title arrays) at spaces to fit the chart's
 * width, measured the way vega estimates text without a canvas (0.8 × font size per
 * character).
 */

import * as vl from "vega-lite";
import * as vega from "vega";
import type { VegaLiteSpec } from "./json.ts";
import { wrapText } from "./chart_style.ts";

export { wrapText };

/** The `$schema` the workbench writes into its specs. */
export const VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** Vega-lite's default title font size (px). */
const TITLE_FONT_SIZE = 13;
/** Width assumed for a chart whose width is not a number (vega-lite's default view width). */
const DEFAULT_WIDTH = 300;

/** The plot width of a spec in px: `width`, the inner spec's, concatenations summed. */
export function chartWidth(spec: Record<string, unknown>): number {
  if (typeof spec.width === "number") return spec.width;
  const inner = spec.spec as Record<string, unknown> | undefined;
  if (inner && typeof inner === "object") {
    const facet = spec.facet as Record<string, unknown> | undefined;
    const cols = facet && "column" in facet
      ? (typeof spec.columns === "number" ? spec.columns : 1)
      : 1;
    return chartWidth(inner) * cols;
  }
  if (Array.isArray(spec.hconcat)) {
    return spec.hconcat.reduce((a: number, s) => a + chartWidth(s as Record<string, unknown>), 0);
  }
  for (const key of ["vconcat", "concat", "layer"]) {
    const parts = spec[key];
    if (Array.isArray(parts) && parts.length) {
      return Math.max(...parts.map((s) => chartWidth(s as Record<string, unknown>)));
    }
  }
  return DEFAULT_WIDTH;
}

/**
 * The spec with its title broken into lines that fit the chart's width (a title given as a
 * string or as `{ text: string }`; one that already fits, or given as lines, is kept).
 */
export function wrapChartTitle(spec: VegaLiteSpec): VegaLiteSpec {
  const t = spec.title as unknown;
  const obj = t && typeof t === "object" && !Array.isArray(t) ? t as Record<string, unknown> : null;
  const text = typeof t === "string" ? t : typeof obj?.text === "string" ? obj.text : null;
  if (text === null) return spec;
  const config = spec.config as { title?: { fontSize?: unknown } } | undefined;
  const size = typeof obj?.fontSize === "number"
    ? obj.fontSize
    : typeof config?.title?.fontSize === "number"
    ? config.title.fontSize
    : TITLE_FONT_SIZE;
  const maxChars = Math.max(16, Math.floor(chartWidth(spec) / (0.8 * size)));
  if (text.length <= maxChars) return spec;
  const lines = wrapText(text, maxChars);
  return { ...spec, title: obj ? { ...obj, text: lines } : lines };
}

/** Compiles a vega-lite spec to a vega spec (errors name the chart). */
export function compileVegaLite(spec: VegaLiteSpec, name = "chart"): vega.Spec {
  try {
    // deno-lint-ignore no-explicit-any
    return vl.compile(spec as any).spec as vega.Spec;
  } catch (e) {
    throw new Error(`chart "${name}": vega-lite cannot compile the spec (${(e as Error).message})`);
  }
}

/** Renders a vega-lite spec to an SVG document (a string starting with `<svg`). */
export async function renderSvg(spec: VegaLiteSpec, name = "chart"): Promise<string> {
  const view = new vega.View(vega.parse(compileVegaLite(wrapChartTitle(spec), name)), {
    renderer: "none",
  });
  try {
    return await view.toSVG();
  } catch (e) {
    throw new Error(`chart "${name}": vega cannot render it (${(e as Error).message})`);
  } finally {
    view.finalize();
  }
}
