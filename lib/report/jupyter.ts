/**
 * Charts in the Deno Jupyter kernel: `display(spec)` shows a vega-lite spec as
 * `application/vnd.vegalite.v5+json` (rendered interactively by JupyterLab) with the
 * headless SVG as the `image/svg+xml` fallback (nbconvert, GitHub, plain viewers).
 *
 * @example In a notebook cell
 * ```ts ignore
 * import { display } from "./lib/report/jupyter.ts";
 * await display({
 *   data: { values: [{ S: 1024, GiB: 20 }, { S: 2048, GiB: 31 }] },
 *   mark: "line",
 *   encoding: { x: { field: "S", type: "quantitative" }, y: { field: "GiB", type: "quantitative" } },
 * });
 * ```
 */

import type { VegaLiteSpec } from "./records.ts";
import { renderSvg } from "./render_svg.ts";

/** The MIME type JupyterLab renders vega-lite with. */
export const VEGA_LITE_MIME = "application/vnd.vegalite.v5+json";

/** A Jupyter MIME bundle. */
export type MimeBundle = Record<string, unknown>;

interface JupyterApi {
  display(bundle: MimeBundle, opts: { raw: boolean }): Promise<void>;
}

/** `Deno.jupyter` when running in the Deno kernel, else null (it throws outside the kernel). */
export function jupyterApi(): JupyterApi | null {
  try {
    const j = (Deno as unknown as { jupyter?: JupyterApi }).jupyter;
    return j && typeof j.display === "function" ? j : null;
  } catch {
    return null;
  }
}

/**
 * The MIME bundle of a chart: the spec (its `$schema` set to vega-lite v5, which
 * JupyterLab's renderer expects; the workbench's specs use no v6-only features) and its SVG.
 */
export async function chartBundle(spec: VegaLiteSpec): Promise<MimeBundle> {
  const svg = await renderSvg(spec);
  const v5 = { ...spec, $schema: "https://vega.github.io/schema/vega-lite/v5.json" };
  return { [VEGA_LITE_MIME]: v5, "image/svg+xml": svg };
}

/**
 * Displays a chart in the Deno Jupyter kernel and returns its MIME bundle. Outside the
 * kernel it only returns the bundle.
 */
export async function display(spec: VegaLiteSpec): Promise<MimeBundle> {
  const bundle = await chartBundle(spec);
  const j = jupyterApi();
  if (j) await j.display(bundle, { raw: true });
  return bundle;
}
