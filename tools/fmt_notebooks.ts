/**
 * `deno run -A tools/fmt_notebooks.ts [--check]`: formats the cells of `notebooks/*.ipynb` the
 * way `deno fmt --check` expects them.
 *
 * Why this exists: `deno fmt` (2.x) checks a notebook by formatting each cell (code as
 * TypeScript, markdown as Markdown, each ending in a newline) and comparing, but when it
 * "formats" the notebook it writes the original cells back unchanged. It then records the file
 * as formatted in its incremental cache, so on the machine that ran `deno fmt` the check
 * passes, while on a fresh clone `deno fmt --check` reports the notebook as unformatted and
 * `deno fmt` changes nothing. Formatting each cell here (through `deno fmt -` on stdin, with the
 * project's config) makes the committed notebooks pass the check anywhere.
 * `--check` only reports the cells that differ (exit 1).
 */

const ROOT = new URL("../", import.meta.url);
const DIR = new URL("notebooks/", ROOT);

interface Cell {
  cell_type: string;
  source: string | string[];
}

async function fmt(text: string, ext: "ts" | "md"): Promise<string> {
  const p = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--config", new URL("deno.json", ROOT).pathname, "--ext", ext, "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await p.output();
  if (!out.success) {
    throw new Error(`deno fmt --ext ${ext} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A cell's source as Jupyter stores it: lines, each but possibly the last ending in "\n". */
function toLines(text: string): string[] {
  return text.split(/(?<=\n)/);
}

const check = Deno.args.includes("--check");
let differ = 0;
const names = [...Deno.readDirSync(DIR)].map((e) => e.name).filter((n) => n.endsWith(".ipynb"));
for (const name of names.sort()) {
  const path = new URL(name, DIR);
  const text = Deno.readTextFileSync(path);
  const nb = JSON.parse(text) as { cells: Cell[] };
  for (const [i, cell] of nb.cells.entries()) {
    if (cell.cell_type !== "code" && cell.cell_type !== "markdown") continue;
    const src = Array.isArray(cell.source) ? cell.source.join("") : cell.source;
    const formatted = await fmt(src, cell.cell_type === "code" ? "ts" : "md");
    if (formatted !== src) {
      differ++;
      if (check) console.log(`${name}: cell ${i + 1} (${cell.cell_type}) is not formatted`);
      cell.source = toLines(formatted);
    }
  }
  if (!check) {
    const out = JSON.stringify(nb, null, 1) + "\n";
    if (out !== text) {
      const tmp = `${path.pathname}.tmp`;
      Deno.writeTextFileSync(tmp, out);
      Deno.renameSync(tmp, path.pathname);
      console.log(`formatted ${name}`);
    }
  }
}
if (check && differ > 0) Deno.exit(1);
