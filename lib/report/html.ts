/**
 * The HTML report of a run (`report.html`): the same sections as the Markdown report, with
 * every chart inlined as SVG and the style inlined, so the file is self-contained: no
 * scripts, no network, no external `src` or `href`.
 */

import { chartTitle } from "./chart_title.ts";
import {
  columnsOf,
  flattenFigures,
  formatCell,
  isJsonObject,
  isJsonScalar,
  metricGroups,
  type ValueTable,
} from "./format.ts";
import { loadWarning, type RunRecords, runTableRows } from "./records.ts";
import type { Json } from "./json.ts";

/** Escapes text for HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

/** Nesting below which a value is shown as indented JSON in `<pre>` instead of tables. */
const MAX_DEPTH = 4;

/**
 * A value as HTML, escaped once: scalars as text; arrays of scalars joined with ", ";
 * objects as a nested two-column table; arrays of objects as a nested table with a column
 * per key; other arrays as a list. Deeper than {@link MAX_DEPTH}: indented JSON in `<pre>`.
 */
export function htmlValue(v: Json | undefined, depth = 0): string {
  if (v === undefined || isJsonScalar(v)) return escapeHtml(formatCell(v));
  if (Array.isArray(v) && v.every(isJsonScalar)) return escapeHtml(formatCell(v));
  if (depth >= MAX_DEPTH) return `<pre>${escapeHtml(JSON.stringify(v, null, 2))}</pre>`;
  if (Array.isArray(v)) {
    if (v.length > 0 && v.every(isJsonObject)) {
      const columns = columnsOf(v);
      return htmlTable(
        { columns, rows: v.map((o) => columns.map((c) => o[c] ?? null)) },
        depth + 1,
      );
    }
    return `<ol class="nested">${
      v.map((x) => `<li>${htmlValue(x, depth + 1)}</li>`).join("")
    }</ol>`;
  }
  const entries = Object.entries(v);
  if (entries.length === 0) return "";
  return `<table class="nested">${
    entries.map(([k, x]) => `<tr><th>${escapeHtml(k)}</th><td>${htmlValue(x, depth + 1)}</td></tr>`)
      .join("")
  }</table>`;
}

function htmlTable(t: ValueTable, depth = 0): string {
  const th = t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const rows = t.rows.map((r) =>
    `<tr>${
      r.map((v) => `<td${typeof v === "number" ? ' class="num"' : ""}>${htmlValue(v, depth)}</td>`)
        .join("")
    }</tr>`
  );
  const cls = depth > 0 ? ' class="nested"' : "";
  const table = `<table${cls}><thead><tr>${th}</tr></thead><tbody>${
    rows.join("\n")
  }</tbody></table>`;
  // a wide table scrolls in its own box, never the page
  return depth > 0 ? table : `<div class="scroll">${table}</div>`;
}

/** Removes an XML declaration or doctype so the SVG can sit inside HTML. */
function inlineSvg(svg: string): string {
  return svg.replace(/^\s*<\?xml[^>]*>\s*/, "").replace(/^\s*<!DOCTYPE[^>]*>\s*/i, "");
}

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; box-sizing: border-box; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
table.nested { margin: 0; font-size: 13px; } table.nested th { text-align: left; font-weight: 500; }
ol.nested { margin: 0; padding-left: 1.4em; } td pre { margin: 0; padding: 0.3em; }
figure { margin: 1em 0; } figcaption { font-weight: 600; margin-bottom: 0.3em; }
figure svg { display: block; max-width: 100%; height: auto; }
div.scroll { max-width: 100%; overflow-x: auto; }
.warning { background: #fff4e5; border-left: 4px solid #e08a00; padding: 0.5em 0.8em; }
h1, h2, h3, figcaption, p { overflow-wrap: anywhere; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.muted { color: #666; }
`;

/** Builds `report.html` from a run's records and the charts' SVG (by chart name). */
export function buildHtml(rec: RunRecords, svgs: ReadonlyMap<string, string>): string {
  const s = rec.summary;
  const b: string[] = [];
  b.push(
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(s.experiment)} report</title>`,
    `<style>${STYLE}</style></head><body>`,
    `<h1>${escapeHtml(s.experiment)}${s.quick ? " (quick)" : ""}</h1>`,
    `<p>${escapeHtml(s.description)}</p>`,
    htmlTable({
      columns: ["run", ""],
      rows: [
        ["command", `deno task exp ${s.argv.join(" ")}`],
        ...runTableRows(s),
        ["started (UTC)", s.startedAt],
        ["wall time", `${s.seconds.toFixed(1)} s`],
      ],
    }),
  );
  const warning = loadWarning(s);
  if (warning) b.push(`<p class="warning">${escapeHtml(warning)}</p>`);
  for (const t of s.tables) b.push(`<h2>${escapeHtml(t.title)}</h2>`, htmlTable(t));
  if (s.notes.length) {
    b.push("<h2>Notes</h2>", ...s.notes.map((n) => `<p>${escapeHtml(n)}</p>`));
  }
  if (rec.charts.length) {
    b.push("<h2>Charts</h2>");
    for (const c of rec.charts) {
      const svg = svgs.get(c.name);
      b.push(
        `<figure id="chart-${escapeHtml(c.name)}"><figcaption>${
          escapeHtml(chartTitle(c.name, c.spec))
        }</figcaption>`,
        svg ? inlineSvg(svg) : `<p class="muted">(chart not rendered)</p>`,
        "</figure>",
      );
    }
  }
  const figures = flattenFigures(s.figures);
  if (figures.length) {
    b.push(
      "<h2>Key figures (summary.json)</h2>",
      htmlTable({
        columns: ["figure", "value"],
        rows: figures.map(([k, v]) => [k, v]),
      }),
    );
  }
  const groups = metricGroups(rec.metrics);
  if (groups.length) {
    b.push("<h2>Metrics (metrics.jsonl)</h2>");
    for (const g of groups) {
      b.push(`<h3>${escapeHtml(g.kind)} (${g.count} rows)</h3>`);
      b.push(
        g.table ? htmlTable(g.table) : `<p class="muted">${g.count} rows: see metrics.jsonl.</p>`,
      );
    }
  }
  b.push("<h2>Config (config.yaml)</h2>", `<pre>${escapeHtml(rec.configYaml)}</pre>`);
  b.push("</body></html>", "");
  return b.join("\n");
}
