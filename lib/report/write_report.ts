/**
 * Writes a run's report files from its records: for every chart (resolved from its
 * definition and the metric rows, see `chart_defs.ts`) `charts/<c>.vl.json` with the data
 * inline and `charts/<c>.svg`, then `report.html` and `report.md`, each through a temporary
 * name and a rename. `rerenderReport(dir)` does the same from a finished run directory
 * (`deno task report`): the chart helpers run again, so a style change shows without
 * re-running the experiment.
 */

import { writeTextAtomic } from "../util/atomic_write.ts";
import { buildHtml } from "./html.ts";
import { buildMarkdown } from "./markdown.ts";
import { readRunRecords, RUN_FILES, runPath, type RunRecords } from "./records.ts";
import { renderSvg } from "./render_svg.ts";

/** Paths written by {@link writeReport}. */
export interface WrittenReport {
  html: string;
  markdown: string;
  svgs: string[];
}

/**
 * Writes every chart's finished spec and SVG, and the HTML and Markdown reports, into
 * `rec.dir`.
 */
export async function writeReport(rec: RunRecords): Promise<WrittenReport> {
  await Deno.mkdir(runPath(rec.dir, RUN_FILES.charts), { recursive: true });
  const svgs = new Map<string, string>();
  const svgPaths: string[] = [];
  for (const c of rec.charts) {
    await writeTextAtomic(
      runPath(rec.dir, RUN_FILES.charts, `${c.name}.vl.json`),
      JSON.stringify(c.spec, null, 1) + "\n",
    );
    const svg = await renderSvg(c.spec, c.name);
    svgs.set(c.name, svg);
    const p = runPath(rec.dir, RUN_FILES.charts, `${c.name}.svg`);
    await writeTextAtomic(p, svg);
    svgPaths.push(p);
  }
  const html = runPath(rec.dir, RUN_FILES.html);
  const markdown = runPath(rec.dir, RUN_FILES.markdown);
  await writeTextAtomic(html, buildHtml(rec, svgs));
  await writeTextAtomic(markdown, buildMarkdown(rec));
  return { html, markdown, svgs: svgPaths };
}

/**
 * Re-renders the report of a finished run directory from its records (`metrics.jsonl`,
 * `charts.json`, `summary.json`, `config.yaml`).
 */
export async function rerenderReport(dir: string): Promise<WrittenReport> {
  return await writeReport(await readRunRecords(dir));
}
