/**
 * `deno task claims [--json] [--only id,id] [--out DIR] [--write-docs]`: computes the claims
 * ledger (`lib/claims/`), every published figure the workbench sets beside its own, on the meta
 * device. Prints the table (claim, published, ours, ratio, tolerance, status, profiles, what
 * stopped the search, sensitivity), writes `DIR/claims.json` and a report in the house style
 * (`DIR/report.md`, `report.html`; DIR defaults to `runs/claims`); `--json` prints
 * `{claims: [...]}` on one line instead; `--write-docs` rewrites the generated blocks of README.md
 * and docs/architecture.md. Exit 0 when every entry ran ("differs" is a finding, not a failure).
 */

import { parseArgs } from "node:util";
import { ledgerMarkdown, ledgerTable, replaceBlocks, runLedger } from "../lib/claims/ledger.ts";
import type { ClaimResult } from "../lib/claims/types.ts";
import { writeTextAtomic } from "../lib/util/atomic_write.ts";
import { writeReport } from "../lib/report/write_report.ts";
import type { RunSummary } from "../lib/report/records.ts";
import { runTask } from "../lib/cli/task_main.ts";

const USAGE = `usage: deno task claims [--json] [--only ID,ID] [--out DIR] [--write-docs]
  --json        print {claims: [...]} on one line (no files written)
  --only IDS    compute these entries only (comma-separated ids)
  --out DIR     where claims.json and the report go (default runs/claims)
  --write-docs  rewrite the generated blocks of README.md and docs/architecture.md`;

/** The docs files with generated blocks. */
const DOC_FILES = ["README.md", "docs/architecture.md"];

async function writeDocs(results: ClaimResult[]): Promise<string[]> {
  const done: string[] = [];
  for (const f of DOC_FILES) {
    const text = await Deno.readTextFile(f);
    const r = replaceBlocks(text, results);
    if (r.text !== text) {
      await writeTextAtomic(f, r.text);
      // the house format (deno fmt pads the tables; the drift test compares them normalized)
      await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", f] }).output();
    }
    done.push(`${f}: ${r.blocks.join(", ") || "no blocks"}`);
  }
  return done;
}

async function writeFiles(dir: string, results: ClaimResult[], t0: Date): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await writeTextAtomic(`${dir}/claims.json`, JSON.stringify({ claims: results }, null, 1) + "\n");
  const finished = new Date();
  const counts = Object.entries(
    results.reduce(
      (a, r) => ({ ...a, [r.status]: (a[r.status] ?? 0) + 1 }),
      {} as Record<string, number>,
    ),
  );
  const summary: RunSummary = {
    experiment: "claims",
    description: "The claims ledger: every published figure beside ours, like for like",
    device: "meta",
    quick: false,
    startedAt: t0.toISOString(),
    finishedAt: finished.toISOString(),
    seconds: (finished.getTime() - t0.getTime()) / 1000,
    argv: Deno.args,
    figures: Object.fromEntries(counts),
    tables: [],
    notes: [
      "Ledger (generated Markdown):\n\n" + ledgerMarkdown(results),
      ...results.flatMap((r) => r.notes.map((n) => `${r.id}: ${n}`)),
      "Sensitivity: S×2 is how much the peak behind ours moves when S doubles; act+10% how much " +
      "ours moves when the activation bytes grow 10%. An entry that moves with neither is " +
      '"fixed memory only" and counts as non-discriminating.',
    ],
    charts: [],
  };
  await writeTextAtomic(`${dir}/summary.json`, JSON.stringify(summary, null, 1) + "\n");
  const w = await writeReport({
    dir,
    configYaml: "",
    config: {},
    metrics: [],
    summary,
    chartDefs: [],
    charts: [],
  });
  return w.markdown;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: "boolean" },
      only: { type: "string" },
      out: { type: "string" },
      "write-docs": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const t0 = new Date();
  const only = values.only?.split(",").map((s) => s.trim()).filter(Boolean);
  const results = await runLedger({
    ...(only ? { only } : {}),
    onEntry: (r) => {
      if (!values.json) console.error(`  ${r.id}: ${r.oursLabel} (${r.status})`);
    },
  });
  if (values.json) {
    console.log(JSON.stringify({ claims: results }));
    return;
  }
  console.log(ledgerTable(results));
  const report = await writeFiles(values.out ?? "runs/claims", results, t0);
  console.log(`\nclaims.json and ${report} written`);
  if (values["write-docs"]) {
    if (only) throw new Error("--write-docs needs every entry: drop --only");
    for (const line of await writeDocs(results)) console.log(`docs: ${line}`);
  }
}

if (import.meta.main) await runTask("claims", () => main(Deno.args), { usage: USAGE });
