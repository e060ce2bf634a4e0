/**
 * Writes a run's report files from its records: `charts/<c>.svg` for every chart spec,
 * `report.html` and `report.md`, each through a temporary name and a rename.
 * `rerenderReport(dir)` does the same from a finished run directory (`deno task report`).
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

/** Renders every chart to SVG and writes the HTML and Markdown reports into `rec.dir`. */
export async function writeReport(rec: RunRecords): Promise<WrittenReport> {
  await Deno.mkdir(runPath(rec.dir, RUN_FILES.charts), { recursive: true });
  const svgs = new Map<string, string>();
  const svgPaths: string[] = [];
  for (const c of rec.charts) {
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

/** Re-renders the report of a finished run directory from its records. */
export async function rerenderReport(dir: string): Promise<WrittenReport> {
  return await writeReport(await readRunRecords(dir));
}
