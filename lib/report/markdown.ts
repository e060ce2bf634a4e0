/**
 * The Markdown report of a run (`report.md`): run facts, the experiment's tables and notes,
 * charts linked as `charts/<name>.svg`, key figures, metric tables and the config.
 */

import { chartTitle } from "./chart_title.ts";
import { flattenFigures, formatCell, metricGroups, type ValueTable } from "./format.ts";
import { loadWarning, type RunRecords, runTableRows } from "./records.ts";
import type { Json } from "./json.ts";

/** A value as one Markdown table cell (nested values as `key: value; …` text, see formatCell). */
function cell(v: Json): string {
  return formatCell(v).replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

/** A Markdown table. */
export function markdownTable(t: ValueTable): string {
  const head = `| ${t.columns.map(cell).join(" | ")} |`;
  const rule = `|${t.columns.map(() => "---").join("|")}|`;
  const body = t.rows.map((r) => `| ${r.map(cell).join(" | ")} |`);
  return [head, rule, ...body].join("\n");
}

/** Builds `report.md` from a run's records. */
export function buildMarkdown(rec: RunRecords): string {
  const s = rec.summary;
  const out: string[] = [];
  out.push(`# ${s.experiment}${s.quick ? " (quick)" : ""}`, "", s.description, "");
  out.push(
    markdownTable({
      columns: ["run", ""],
      rows: [
        ["command", `deno task exp ${s.argv.join(" ")}`],
        ...runTableRows(s),
        ["started (UTC)", s.startedAt],
        ["wall time", `${s.seconds.toFixed(1)} s`],
      ],
    }),
    "",
  );
  const warning = loadWarning(s);
  if (warning) out.push(`> ${warning}`, "");
  for (const t of s.tables) out.push(`## ${t.title}`, "", markdownTable(t), "");
  if (s.notes.length) out.push("## Notes", "", ...s.notes.flatMap((n) => [n, ""]));
  if (rec.charts.length) {
    out.push("## Charts", "");
    for (const c of rec.charts) {
      out.push(`### ${chartTitle(c.name, c.spec)}`, "", `![${c.name}](charts/${c.name}.svg)`, "");
      out.push(`Spec: [charts/${c.name}.vl.json](charts/${c.name}.vl.json)`, "");
    }
  }
  const figures = flattenFigures(s.figures);
  if (figures.length) {
    out.push(
      "## Key figures (summary.json)",
      "",
      markdownTable({
        columns: ["figure", "value"],
        rows: figures.map(([k, v]) => [k, v]),
      }),
      "",
    );
  }
  const groups = metricGroups(rec.metrics);
  if (groups.length) {
    out.push("## Metrics (metrics.jsonl)", "");
    for (const g of groups) {
      out.push(`### ${g.kind} (${g.count} rows)`, "");
      out.push(g.table ? markdownTable(g.table) : `${g.count} rows: see metrics.jsonl.`, "");
    }
  }
  out.push("## Config (config.yaml)", "", "```yaml", rec.configYaml.trimEnd(), "```", "");
  return out.join("\n");
}
