/**
 * The house stays layered: every folder of `lib/` has a place in {@link LAYERS}, a file imports
 * only from its own folder or a lower one, and no files import one another in a circle (type
 * imports count too). A failure names the file and the import. The order and one line of
 * reason per layer are in docs/architecture.md ("Layers").
 */

import assert from "node:assert/strict";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** lib's folders, lowest first: each may import only from itself and the folders before it. */
const LAYERS = [
  "util", // helpers with no project imports: random numbers, atomic writes, flag values
  "device", // WebGPU and meta devices, tensors, the allocator, kernel sources
  "config", // model configs: presets, derived shapes, resolving overrides
  "data", // tokenizers, corpora, batches
  "reference", // readable f64 references of every op and of the model
  "ops", // the kernels' wrappers: one op, its dispatches, its allocations
  "nn", // layers: norm, attention, MLP, head + loss, LoRA, parameters
  "checkpoint", // safetensors, run state, PEFT adapters, NF4 checkpoints
  "mst", // the wrapping mechanisms: recomputation, mini-sequences, chunking
  "sharding", // one rank's ZeRO partitions and gathers, the parallel plan
  "optim", // AdamW and the loss scaler
  "profiles", // framework accounting profiles: layer factory, allocator model, extras
  "techniques", // one module per memory technique, their registry, the policy
  "models", // Model.build: the profile's plain model + the techniques, in order
  "cli", // flags → config and policy, shared by the tasks
  "train", // the trainer, the step driver, runs on disk
  "plan", // the planner on the meta device, GPUs, DeepSpeed export, ALST
  "report", // charts, Markdown and HTML reports, the runs index
  "experiments", // experiment definitions, their runner, journal and figures
  "claims", // the claims ledger: published figures beside ours
  "testing", // test support: GPU test devices, model checks, layout checks
  "bench", // benchmarks against TensorFlow.js and PyTorch
] as const;

/**
 * Declared exceptions (at most 2), each `"file -> import"` with its reason. None today.
 */
const EXCEPTIONS: Readonly<Record<string, string>> = {};

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const lib = resolve(root, "lib");

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...tsFiles(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out.sort();
}

/** Relative specifiers a file imports or re-exports (static, type-only and dynamic). */
function importsOf(file: string): string[] {
  const text = Deno.readTextFileSync(file)
    .replace(/\/\*[\s\S]*?\*\//g, "") // block comments (JSDoc examples import mod.ts)
    .replace(/^\s*\/\/.*$/gm, "");
  const specs = new Set<string>();
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm;
  for (const m of text.matchAll(re)) specs.add(m[1]);
  return [...specs];
}

const folderOf = (file: string) => relative(lib, file).split("/")[0];

Deno.test("every folder of lib has a layer", () => {
  const folders = [...Deno.readDirSync(lib)].filter((e) => e.isDirectory).map((e) => e.name);
  for (const f of folders) {
    assert.ok(
      (LAYERS as readonly string[]).includes(f),
      `lib/${f} has no place in LAYERS (tests/layers_test.ts); add it where its imports allow`,
    );
  }
  assert.ok(Object.keys(EXCEPTIONS).length <= 2, "at most 2 declared exceptions");
});

Deno.test("no file of lib imports from a higher layer", () => {
  const rank = (f: string) => (LAYERS as readonly string[]).indexOf(f);
  const upward: string[] = [];
  for (const file of tsFiles(lib)) {
    for (const spec of importsOf(file)) {
      const target = resolve(dirname(file), spec);
      if (!target.startsWith(lib + "/")) continue; // kernels/gen, mod.ts: outside the layers
      const from = folderOf(file);
      const to = folderOf(target);
      const edge = `${relative(root, file)} -> ${relative(root, target)}`;
      if (rank(to) > rank(from) && !(edge in EXCEPTIONS)) {
        upward.push(`${edge} (${from} imports the higher layer ${to})`);
      }
    }
  }
  assert.deepEqual(upward, [], `upward imports:\n  ${upward.join("\n  ")}`);
});

Deno.test("no import cycle among lib's files", () => {
  const graph = new Map<string, string[]>();
  for (const file of tsFiles(lib)) {
    graph.set(
      file,
      importsOf(file).map((s) => resolve(dirname(file), s)).filter((t) => t.startsWith(lib + "/")),
    );
  }
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, "open");
    stack.push(f);
    for (const t of graph.get(f) ?? []) {
      if (state.get(t) === "open") {
        const cycle = [...stack.slice(stack.indexOf(t)), t].map((x) => relative(root, x));
        cycles.push(cycle.join(" -> "));
      } else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(f, "done");
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, [], `import cycles:\n  ${cycles.join("\n  ")}`);
});
