/**
 * The runs index (`deno task report --index runs/`): one self-contained `index.html` listing
 * every run directory found under a folder — a directory with a `config.yaml`, at any depth —
 * with its experiment, date, device, wall time, key figures (from `summary.json`) and a
 * relative link to its report. A run without `summary.json` is marked: `failed` when it left
 * an `error.txt` (its first line is shown), else `incomplete` (still running, or stopped).
 */

import { writeTextAtomic } from "../util/atomic_write.ts";
import { escapeHtml } from "./html.ts";
import { flattenFigures, formatCell, isJsonScalar } from "./format.ts";
import { RUN_FILES, runPath, type RunSummary } from "./records.ts";
import { exists, readTextIfExists } from "../util/fs.ts";

/** The file name of the index, written in the folder it indexes. */
const INDEX_FILE = "index.html";

/** How many key figures a run shows in the index. */
const MAX_FIGURES = 8;

/** One run of the index. */
export interface IndexedRun {
  /** The run directory, relative to the indexed folder (POSIX separators). */
  path: string;
  status: "complete" | "failed" | "incomplete";
  experiment: string;
  /** ISO time the run started (from the summary, the config header or the stamp), or null. */
  date: string | null;
  device: string | null;
  quick: boolean | null;
  /** Wall time in seconds (complete runs). */
  seconds: number | null;
  /** Up to {@link MAX_FIGURES} scalar key figures, flattened (`plan.maxSeq.mst`). */
  figures: [string, string | number | boolean | null][];
  /** Key figures not shown. */
  moreFigures: number;
  /** The first line of `error.txt` (failed runs). */
  error: string | null;
  /** Relative links: the report, when there is one, and the run's other files worth opening. */
  report: string | null;
  files: string[];
}

/** Run directories under `root` (those holding `config.yaml`), relative paths, sorted. */
export async function findRunDirs(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const dir = rel ? runPath(root, rel) : root;
    const subdirs: string[] = [];
    let isRun = false;
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name === RUN_FILES.config) isRun = true;
      // symbolic links are not followed (no cycles); hidden folders are skipped
      else if (e.isDirectory && !e.name.startsWith(".")) subdirs.push(e.name);
    }
    if (isRun) {
      out.push(rel);
      return; // a run's own folders (charts/) hold no runs
    }
    for (const s of subdirs) await walk(rel ? `${rel}/${s}` : s);
  };
  await walk("");
  return out.sort();
}

/** `2025-11-28T10-42-03Z` (a run folder's stamp) → ISO time, or null. */
export function stampToIso(name: string): string | null {
  const m = name.match(/^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z(?:-\d+)?$/);
  return m ? `${m[1]}T${m[2]}:${m[3]}:${m[4]}.000Z` : null;
}

/** What `config.yaml`'s header comment says: `# experiment <name> [(quick)], device <d>, <ISO>`. */
export function parseConfigHeader(
  yaml: string,
): { experiment: string; quick: boolean; device: string; date: string } | null {
  const m = yaml.match(/^# experiment (\S+)( \(quick\))?, device (\S+), (\S+)\s*$/m);
  return m ? { experiment: m[1], quick: !!m[2], device: m[3], date: m[4] } : null;
}

/** Reads one run directory (`rel` under `root`) for the index. */
async function indexRun(root: string, rel: string): Promise<IndexedRun> {
  const dir = rel ? runPath(root, rel) : root;
  const link = (file: string) => (rel ? `${rel}/${file}` : file);
  const header = parseConfigHeader(await readTextIfExists(runPath(dir, RUN_FILES.config)) ?? "");
  const parts = rel.split("/");
  const stamp = stampToIso(parts[parts.length - 1] ?? "");
  const summaryText = await readTextIfExists(runPath(dir, RUN_FILES.summary));
  let summary: RunSummary | null = null;
  let error: string | null = null;
  if (summaryText !== null) {
    try {
      summary = JSON.parse(summaryText);
    } catch (e) {
      error = `summary.json is not JSON (${(e as Error).message})`;
    }
  }
  const errorText = await readTextIfExists(runPath(dir, "error.txt"));
  if (!summary && errorText !== null) {
    error = errorText.split("\n").find((l) => l.trim() !== "")?.trim() ?? "(empty error.txt)";
  }
  const status = summary ? "complete" : error !== null ? "failed" : "incomplete";
  const figures = summary?.figures
    ? flattenFigures(summary.figures).filter((f): f is [string, string | number | boolean | null] =>
      isJsonScalar(f[1])
    )
    : [];
  const files: string[] = [];
  for (const f of [RUN_FILES.markdown, RUN_FILES.log, "error.txt", RUN_FILES.metrics]) {
    if (await exists(runPath(dir, f))) files.push(link(f));
  }
  return {
    path: rel || ".",
    status,
    experiment: summary?.experiment ?? header?.experiment ??
      (parts.length >= 2 ? parts[parts.length - 2] : parts[0] || "?"),
    date: summary?.startedAt ?? header?.date ?? stamp,
    device: summary?.device ?? header?.device ?? null,
    quick: summary?.quick ?? header?.quick ?? null,
    seconds: typeof summary?.seconds === "number" ? summary.seconds : null,
    figures: figures.slice(0, MAX_FIGURES),
    moreFigures: Math.max(0, figures.length - MAX_FIGURES),
    error,
    report: summary && await exists(runPath(dir, RUN_FILES.html)) ? link(RUN_FILES.html) : null,
    files,
  };
}

/** Every run under `root`, newest first (undated last). */
export async function indexRuns(root: string): Promise<IndexedRun[]> {
  const runs = [];
  for (const rel of await findRunDirs(root)) runs.push(await indexRun(root, rel));
  return runs.sort((a, b) =>
    (b.date ?? "").localeCompare(a.date ?? "") || a.path.localeCompare(b.path)
  );
}

/** A relative link, its path segments percent-encoded. */
function href(rel: string): string {
  return escapeHtml(rel.split("/").map(encodeURIComponent).join("/"));
}

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1300px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
ul.figures { margin: 0; padding-left: 1.1em; } ul.figures li { white-space: nowrap; }
.status { font-weight: 600; } .failed { color: #b00; } .incomplete { color: #a60; } .complete { color: #070; }
.muted { color: #666; } code { font-size: 13px; } td.date { white-space: nowrap; }
`;

/** The index page for `runs` (found under `root`, shown in the title). */
function buildIndexHtml(root: string, runs: readonly IndexedRun[]): string {
  const count = (s: IndexedRun["status"]) => runs.filter((r) => r.status === s).length;
  const rows = runs.map((r) => {
    const figures = r.figures.length
      ? `<ul class="figures">${
        r.figures.map(([k, v]) => `<li>${escapeHtml(k)}: <b>${escapeHtml(formatCell(v))}</b></li>`)
          .join("")
      }${r.moreFigures ? `<li class="muted">+${r.moreFigures} more in the report</li>` : ""}</ul>`
      : r.status === "complete"
      ? `<span class="muted">none</span>`
      : "";
    const status = `<span class="status ${r.status}">${r.status}</span>` +
      (r.error ? `<br><span class="failed">${escapeHtml(r.error)}</span>` : "");
    const links = [
      r.report ? `<a href="${href(r.report)}">report</a>` : "",
      ...r.files.map((f) => `<a href="${href(f)}">${escapeHtml(f.split("/").pop()!)}</a>`),
    ].filter((l) => l !== "").join(" · ");
    return `<tr><td>${escapeHtml(r.experiment)}${r.quick ? " (quick)" : ""}<br><code>${
      escapeHtml(r.path)
    }</code></td><td class="date">${
      escapeHtml(r.date?.replace(/\.\d+Z$/, "Z").replace("T", " ") ?? "—")
    }</td><td>${escapeHtml(r.device ?? "—")}</td><td class="num">${
      r.seconds === null ? "—" : `${r.seconds.toFixed(1)} s`
    }</td><td>${status}</td><td>${figures}</td><td>${links}</td></tr>`;
  });
  return [
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>runs: ${escapeHtml(root)}</title>`,
    `<style>${STYLE}</style></head><body>`,
    `<h1>Runs in <code>${escapeHtml(root)}</code></h1>`,
    `<p>${runs.length} runs: ${count("complete")} complete, ${count("failed")} failed, ` +
    `${count("incomplete")} incomplete (no summary.json: still running or stopped). ` +
    `Newest first. Written by <code>deno task report --index ${escapeHtml(root)}</code>.</p>`,
    runs.length
      ? `<table><thead><tr><th>experiment</th><th>started (UTC)</th><th>device</th>` +
        `<th>wall time</th><th>status</th><th>key figures</th><th>files</th></tr></thead>` +
        `<tbody>\n${rows.join("\n")}\n</tbody></table>`
      : `<p class="muted">No run directories (folders with a config.yaml) were found.</p>`,
    "</body></html>",
    "",
  ].join("\n");
}

/** Writes `<root>/index.html` (atomically); returns its path and the runs. */
export async function writeRunsIndex(root: string): Promise<{ path: string; runs: IndexedRun[] }> {
  try {
    if (!(await Deno.stat(root)).isDirectory) throw new Error(`${root} is not a directory`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${root}: no such directory (give the folder holding the runs, e.g. runs/)`);
    }
    throw e;
  }
  const runs = await indexRuns(root);
  const path = runPath(root, INDEX_FILE);
  await writeTextAtomic(path, buildIndexHtml(root, runs));
  return { path, runs };
}
