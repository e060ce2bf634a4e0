/**
 * Renders a vega-lite spec to SVG headless: vega-lite compiles it to a vega spec, vega
 * renders it with no canvas (`renderer: "none"`, text widths estimated). Works in plain
 * Deno and in the Deno Jupyter kernel; no network (data must be inline).
 */

import * as vl from "vega-lite";
import * as vega from "vega";
import type { VegaLiteSpec } from "./records.ts";

/** The `$schema` the workbench writes into its specs. */
export const VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

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
  const view = new vega.View(vega.parse(compileVegaLite(spec, name)), { renderer: "none" });
  try {
    return await view.toSVG();
  } catch (e) {
    throw new Error(`chart "${name}": vega cannot render it (${(e as Error).message})`);
  } finally {
    view.finalize();
  }
}
