/**
 * The notebooks of `notebooks/`: committed without outputs, importing only `../mod.ts`,
 * type-checked against the public API, and executed headless in the Deno Jupyter kernel
 * (`jupyter nbconvert --to notebook --execute`) with no error output and at least one
 * vega-lite chart each.
 *
 * Execution needs Jupyter and the Deno kernel (`./setup.sh --jupyter`). Without them those
 * tests are skipped, unless `MST_REQUIRE_JUPYTER=1` (set by `.ci/run`), where they fail.
 */

import assert from "node:assert/strict";
import { VEGA_LITE_MIME } from "../lib/report/jupyter.ts";

const ROOT = new URL("../", import.meta.url);
const NOTEBOOKS = new URL("notebooks/", ROOT);
const MOD = new URL("mod.ts", ROOT);
/** Per-cell limit for nbconvert: generous, for a busy 2-core CI machine. */
const CELL_TIMEOUT_S = 1200;

/** The parts of an `.ipynb` file (nbformat 4) the checks read. */
interface Notebook {
  cells: Cell[];
  metadata: { kernelspec?: { name?: string } };
}

interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
  execution_count?: number | null;
}

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

const joined = (s: string | string[] | undefined): string =>
  Array.isArray(s) ? s.join("") : s ?? "";

function notebookFiles(): string[] {
  return [...Deno.readDirSync(NOTEBOOKS)]
    .filter((e) => e.isFile && e.name.endsWith(".ipynb"))
    .map((e) => e.name)
    .sort();
}

function readNotebook(path: string | URL): Notebook {
  return JSON.parse(Deno.readTextFileSync(path)) as Notebook;
}

function codeCells(nb: Notebook): Cell[] {
  return nb.cells.filter((c) => c.cell_type === "code");
}

/**
 * Whether a line the notebook wrote to stderr reports an error. Uncaught exceptions and
 * panics always count; other lines count when they say "error" and are not a logger's
 * warning or info line (e.g. wgpu/Mesa notices such as `[WARN wgpu_hal] … error …`).
 */
function isErrorLine(line: string): boolean {
  if (/\buncaught\b|\bpanicked\b/i.test(line)) return true;
  return /\berror\b/i.test(line) && !/\b(warn|warning|info|debug|trace)\b/i.test(line);
}

/** The problems of an executed notebook: error outputs, error lines on stderr, echoed bundles. */
function notebookProblems(nb: Notebook): string[] {
  const problems: string[] = [];
  codeCells(nb).forEach((cell, i) => {
    const where = `code cell ${i + 1}`;
    for (const o of cell.outputs ?? []) {
      if (o.output_type === "error") {
        // deno-lint-ignore no-control-regex -- strips ANSI colour codes from the traceback
        const trace = (o.traceback ?? []).join("\n").replace(/\x1b\[[0-9;]*m/g, "");
        problems.push(`${where}: ${o.ename}: ${o.evalue}\n${trace}`);
      } else if (o.output_type === "stream" && o.name === "stderr") {
        for (const line of joined(o.text).split("\n")) {
          if (isErrorLine(line)) problems.push(`${where}: stderr: ${line}`);
        }
      } else if (o.output_type === "execute_result") {
        const text = joined(o.data?.["text/plain"] as string | string[] | undefined);
        if (/<svg|image\/svg\+xml|vnd\.vegalite/.test(text)) {
          problems.push(`${where}: the cell's value echoes a chart bundle as text`);
        }
      }
    }
  });
  return problems;
}

/** Number of vega-lite charts shown in an executed notebook. */
function chartCount(nb: Notebook): number {
  return codeCells(nb).flatMap((c) => c.outputs ?? [])
    .filter((o) => o.output_type === "display_data" && o.data?.[VEGA_LITE_MIME] !== undefined)
    .length;
}

async function run(cmd: string, args: string[], cwd?: URL) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Null when `jupyter nbconvert` and the Deno kernel are installed, else what is missing. */
async function jupyterMissing(): Promise<string | null> {
  try {
    const specs = await run("jupyter", ["kernelspec", "list", "--json"]);
    if (specs.code !== 0) return `jupyter kernelspec list failed: ${specs.stderr.trim()}`;
    const names = Object.keys(JSON.parse(specs.stdout).kernelspecs ?? {});
    if (!names.includes("deno")) return `no Deno kernel (kernels: ${names.join(", ")})`;
    const nbconvert = await run("jupyter", ["nbconvert", "--version"]);
    if (nbconvert.code !== 0) return "jupyter nbconvert is not installed";
    return null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "jupyter is not installed";
    throw e;
  }
}

/** What a failed nbconvert says, with the fix when the Deno kernel is not registered. */
function nbconvertFailure(name: string, code: number, stderr: string): string {
  const hint = /NoSuchKernel/.test(stderr)
    ? "\nThe Deno kernel is not registered with Jupyter: run ./setup.sh --jupyter " +
      "(it runs deno jupyter --install), then check with jupyter kernelspec list."
    : "";
  return `jupyter nbconvert --execute ${name} failed (exit ${code}):\n${
    stderr.slice(-3000)
  }${hint}`;
}

/** Executes a notebook headless; returns the executed notebook. Throws if nbconvert fails. */
async function execute(path: URL, outDir: string): Promise<Notebook> {
  const name = path.pathname.split("/").pop()!;
  const r = await run("jupyter", [
    "nbconvert",
    "--to",
    "notebook",
    "--execute",
    "--allow-errors", // errors stay in the output notebook, where the checks report them
    `--ExecutePreprocessor.timeout=${CELL_TIMEOUT_S}`,
    "--ExecutePreprocessor.startup_timeout=300",
    "--output-dir",
    outDir,
    "--output",
    name,
    path.pathname,
  ]);
  assert.equal(r.code, 0, nbconvertFailure(name, r.code, r.stderr));
  return readNotebook(`${outDir}/${name}`);
}

Deno.test("notebooks are committed without outputs and import only ../mod.ts", () => {
  const files = notebookFiles();
  assert.ok(files.includes("quickstart.ipynb") && files.includes("llama3-long.ipynb"), `${files}`);
  for (const f of files) {
    const nb = readNotebook(new URL(f, NOTEBOOKS));
    assert.equal(nb.metadata.kernelspec?.name, "deno", `${f}: the kernel must be "deno"`);
    const cells = codeCells(nb);
    assert.ok(cells.length > 0, `${f}: no code cells`);
    cells.forEach((c, i) => {
      const where = `${f}, code cell ${i + 1}`;
      assert.deepEqual(c.outputs, [], `${where} has outputs: clear them before committing`);
      assert.equal(c.execution_count, null, `${where} has an execution count: clear outputs`);
      const src = joined(c.source);
      for (const m of src.matchAll(/\bfrom\s+["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']/g)) {
        assert.equal(m[1] ?? m[2], "../mod.ts", `${where} imports ${m[1] ?? m[2]}: use ../mod.ts`);
      }
    });
  }
});

Deno.test("notebook cells are formatted as deno fmt --check expects on a fresh clone", async () => {
  // deno fmt writes notebooks back unchanged, so only formatted cells pass its check anywhere
  const r = await run(Deno.execPath(), ["run", "-A", "tools/fmt_notebooks.ts", "--check"], ROOT);
  assert.equal(r.code, 0, `run deno run -A tools/fmt_notebooks.ts:\n${r.stdout}${r.stderr}`);
});

Deno.test("a missing Deno kernel is reported with the command that installs it", () => {
  const msg = nbconvertFailure(
    "x.ipynb",
    1,
    "jupyter_client.kernelspec.NoSuchKernel: No such kernel named deno",
  );
  assert.match(msg, /run \.\/setup\.sh --jupyter/);
  assert.doesNotMatch(nbconvertFailure("x.ipynb", 1, "SyntaxError"), /setup\.sh/);
});

Deno.test("notebooks type-check against the public API", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nb-check-" });
  try {
    const files: string[] = [];
    for (const f of notebookFiles()) {
      // The kernel runs the cells in one scope, in order: as one module they check the same.
      const src = codeCells(readNotebook(new URL(f, NOTEBOOKS))).map((c) => joined(c.source))
        .join("\n\n").replaceAll('"../mod.ts"', JSON.stringify(MOD.href));
      const file = `${dir}/${f.replace(/\.ipynb$/, "")}.ts`;
      await Deno.writeTextFile(file, `${src}\n\nexport {};\n`);
      files.push(file);
    }
    const r = await run(Deno.execPath(), [
      "check",
      "--config",
      new URL("deno.json", ROOT).pathname,
      ...files,
    ]);
    assert.equal(r.code, 0, `deno check of the notebooks' code failed:\n${r.stderr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the notebook checks flag errors and echoed bundles, not warnings", () => {
  const nb = (...outputs: Output[]): Notebook => ({
    cells: [{ cell_type: "code", source: "", outputs }],
    metadata: {},
  });
  assert.deepEqual(notebookProblems(nb({ output_type: "stream", name: "stdout", text: "ok" })), []);
  const warnings = [
    "WARNING: lavapipe is not a conformant vulkan implementation, testing use only.\n",
    "[2025-01-01T00:00:00Z WARN  wgpu_hal::vulkan] surface error ignored\n",
    "WARN Channel strokeWidth should not be used with an unsorted discrete field.\n",
  ];
  assert.deepEqual(
    notebookProblems(nb({ output_type: "stream", name: "stderr", text: warnings })),
    [],
  );
  const errors = notebookProblems(nb(
    { output_type: "error", ename: "TypeError", evalue: "x is undefined", traceback: ["at f"] },
    { output_type: "stream", name: "stderr", text: ["error: Uncaught (in promise) boom\n"] },
    { output_type: "stream", name: "stderr", text: "Error: device lost\n" },
    { output_type: "execute_result", data: { "text/plain": "{ 'image/svg+xml': '<svg' }" } },
  ));
  assert.equal(errors.length, 4, errors.join("\n"));
  assert.match(errors[0], /code cell 1: TypeError: x is undefined/);
  assert.match(errors[3], /echoes a chart bundle/);
  assert.equal(chartCount(nb({ output_type: "display_data", data: { [VEGA_LITE_MIME]: {} } })), 1);
  assert.equal(chartCount(nb({ output_type: "display_data", data: { "text/markdown": "" } })), 0);
});

const missing = await jupyterMissing();
const required = Deno.env.get("MST_REQUIRE_JUPYTER") === "1";
const skipNote = missing && !required
  ? ` (skipped: ${missing}; run ./setup.sh --jupyter to install Jupyter and the Deno kernel)`
  : "";

Deno.test({
  name: `notebooks execute headless with no error output and show charts${skipNote}`,
  ignore: skipNote !== "",
  async fn(t) {
    assert.equal(
      missing,
      null,
      `MST_REQUIRE_JUPYTER=1 but ${missing}: run ./setup.sh --jupyter`,
    );
    const outDir = await Deno.makeTempDir({ prefix: "nb-exec-" });
    try {
      await t.step("a failing cell is caught", async () => {
        // Outside the repository: no import map needed, only the kernel's error output.
        const failing = `${outDir}/failing.ipynb`;
        await Deno.writeTextFile(
          failing,
          JSON.stringify({
            cells: [{
              cell_type: "code",
              execution_count: null,
              metadata: {},
              outputs: [],
              source: ['throw new Error("expected failure");'],
            }],
            metadata: {
              kernelspec: { name: "deno", display_name: "Deno", language: "typescript" },
            },
            nbformat: 4,
            nbformat_minor: 5,
          }),
        );
        const problems = notebookProblems(
          await execute(new URL(`file://${failing}`), `${outDir}/failing-out`),
        );
        assert.equal(problems.length, 1, problems.join("\n"));
        assert.match(problems[0], /Error: expected failure/);
      });
      for (const f of notebookFiles()) {
        await t.step(f, async () => {
          const nb = await execute(new URL(f, NOTEBOOKS), outDir);
          const problems = notebookProblems(nb);
          assert.deepEqual(problems, [], `${f}:\n${problems.join("\n\n")}`);
          assert.ok(chartCount(nb) >= 1, `${f} showed no vega-lite chart`);
        });
      }
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  },
});
