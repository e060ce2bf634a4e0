/**
 * Charts and tables in the Deno Jupyter kernel: `display(spec)` shows a vega-lite spec as
 * `application/vnd.vegalite.v5+json` (rendered interactively by JupyterLab) with the
 * headless SVG as the `image/svg+xml` fallback (nbconvert, GitHub, plain viewers);
 * `displayTable(t)` and `displayFigures(f)` show a report table or a run's key figures as
 * Markdown. They return nothing, so the cell shows the output only (a returned bundle would
 * be echoed by the kernel as a long text result); `chartBundle` and `tableBundle` give the
 * bundles themselves.
 *
 * @example In a notebook cell
 * ```ts ignore
 * import { display } from "../mod.ts";
 * await display({
 *   data: { values: [{ S: 1024, GiB: 20 }, { S: 2048, GiB: 31 }] },
 *   mark: "line",
 *   encoding: { x: { field: "S", type: "quantitative" }, y: { field: "GiB", type: "quantitative" } },
 * });
 * ```
 */

import { flattenFigures, formatCell } from "./format.ts";
import { markdownTable } from "./markdown.ts";
import type { Json, ReportTable, VegaLiteSpec } from "./json.ts";
import { renderSvg } from "./render_svg.ts";

/** The MIME type JupyterLab renders vega-lite with. */
export const VEGA_LITE_MIME = "application/vnd.vegalite.v5+json";

/** A Jupyter MIME bundle. */
export type MimeBundle = Record<string, unknown>;

interface JupyterApi {
  display(bundle: MimeBundle, opts: { raw: boolean }): Promise<void>;
}

/** `Deno.jupyter` when running in the Deno kernel, else null (it throws outside the kernel). */
function jupyterApi(): JupyterApi | null {
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

/** The MIME bundle of a table: Markdown (a `###` title, then the table) and the same as text. */
export function tableBundle(table: ReportTable): MimeBundle {
  const md = `### ${table.title}\n\n${markdownTable(table)}\n`;
  return { "text/markdown": md, "text/plain": md };
}

async function show(bundle: MimeBundle): Promise<void> {
  const j = jupyterApi();
  if (j) await j.display(bundle, { raw: true });
}

/**
 * Shows a vega-lite chart in the Deno Jupyter kernel (vega-lite with an SVG fallback).
 * Returns nothing, so the kernel does not echo the bundle; outside the kernel it does
 * nothing (use {@link chartBundle} or {@link renderSvg} there).
 * @param spec A vega-lite spec with its data inline, e.g. a run's `charts/<name>.vl.json`.
 */
export async function display(spec: VegaLiteSpec): Promise<void> {
  if (jupyterApi()) await show(await chartBundle(spec));
}

/**
 * Shows a table (e.g. one of a run's `summary.tables`) as Markdown in the Deno Jupyter
 * kernel; outside the kernel it does nothing (see {@link tableBundle}).
 * @param table Title, column headers and rows.
 */
export async function displayTable(table: ReportTable): Promise<void> {
  await show(tableBundle(table));
}

/**
 * Shows key figures (e.g. a run's `summary.figures`) as a two-column Markdown table, nested
 * keys flattened to `a.b.c`; outside the kernel it does nothing.
 * @param figures The figures.
 * @param title The table's title (default "Key figures").
 */
export async function displayFigures(
  figures: Record<string, Json>,
  title = "Key figures",
): Promise<void> {
  await displayTable({
    title,
    columns: ["figure", "value"],
    rows: flattenFigures(figures).map(([k, v]) => [k, formatCell(v)]),
  });
}
