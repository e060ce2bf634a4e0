/**
 * The experiment registry: every `experiments/<name>.ts` of the repository whose default
 * export is a {@link Experiment} named `<name>`.
 *
 * A file is taken for an experiment only when its source says so — `export default
 * defineExperiment(` (or `const x = defineExperiment(` … `export default x`) — checked on the
 * text before anything is imported. So `deno task exp --list` never runs a plain script that
 * sits in `experiments/`: it is skipped with a warning, and so is an experiment that fails to
 * load, while the others are still listed.
 */

import type { Experiment } from "./define.ts";
import type { ExperimentConfig } from "./config.ts";

/** The repository's `experiments/` directory. */
const EXPERIMENTS_DIR = new URL("../../experiments/", import.meta.url);

/** Whether a module's source default-exports `defineExperiment(…)` (checked without importing). */
export function declaresExperiment(source: string): boolean {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  if (/^\s*export\s+default\s+defineExperiment\s*(<[^>]*>)?\s*\(/m.test(code)) return true;
  const named = code.match(/^\s*export\s+default\s+([A-Za-z_$][\w$]*)\s*;?\s*$/m);
  if (!named) return false;
  const id = named[1].replace(/\$/g, "\\$");
  return new RegExp(
    `^\\s*(?:export\\s+)?(?:const|let|var)\\s+${id}\\s*(?::[^=]+)?=\\s*defineExperiment\\s*(<[^>]*>)?\\s*\\(`,
    "m",
  ).test(code);
}

/** Names of the `.ts` files of `dir` (without `.ts`; tests excluded), sorted. */
async function moduleNames(dir: URL): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        names.push(e.name.slice(0, -3));
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return names.sort();
}

async function readSource(dir: URL, name: string): Promise<string> {
  return await Deno.readTextFile(new URL(`${name}.ts`, dir));
}

/** Names of the experiments (files that declare one), sorted. */
export async function experimentNames(dir: URL = EXPERIMENTS_DIR): Promise<string[]> {
  const out: string[] = [];
  for (const n of await moduleNames(dir)) {
    if (declaresExperiment(await readSource(dir, n))) out.push(n);
  }
  return out;
}

const NOT_DECLARED =
  "it does not `export default defineExperiment({ ... })`, so it is not imported";

/** Loads an experiment by name; an unknown name lists the known ones. */
export async function loadExperiment(
  name: string,
  dir: URL = EXPERIMENTS_DIR,
): Promise<Experiment<ExperimentConfig>> {
  const modules = await moduleNames(dir);
  if (!modules.includes(name)) {
    const names = await experimentNames(dir);
    throw new Error(
      `unknown experiment "${name}"; known experiments: ${names.join(", ") || "(none)"}` +
        `\n(run \`deno task exp --list\` for descriptions)`,
    );
  }
  if (!declaresExperiment(await readSource(dir, name))) {
    throw new Error(`experiments/${name}.ts is not an experiment: ${NOT_DECLARED}`);
  }
  const mod = await import(new URL(`${name}.ts`, dir).href);
  const exp = mod.default as Experiment<ExperimentConfig> | undefined;
  if (!exp || typeof exp.run !== "function" || typeof exp.defaults !== "object") {
    throw new Error(
      `experiments/${name}.ts must default-export defineExperiment({ name, description, defaults, run })`,
    );
  }
  if (exp.name !== name) {
    throw new Error(`experiments/${name}.ts defines an experiment named "${exp.name}"; rename one`);
  }
  return exp;
}

/** What {@link listExperiments} found. */
export interface ExperimentList {
  /** The experiments that loaded, by name. */
  experiments: Experiment<ExperimentConfig>[];
  /** Files of the directory that were skipped, and why. */
  skipped: { file: string; reason: string }[];
}

/**
 * Every experiment, loaded (for `--list`). A file that does not declare an experiment is
 * skipped without being imported; one that fails to load is skipped with its error.
 */
export async function listExperiments(dir: URL = EXPERIMENTS_DIR): Promise<ExperimentList> {
  const out: ExperimentList = { experiments: [], skipped: [] };
  for (const n of await moduleNames(dir)) {
    const file = `experiments/${n}.ts`;
    if (!declaresExperiment(await readSource(dir, n))) {
      out.skipped.push({ file, reason: NOT_DECLARED });
      continue;
    }
    try {
      out.experiments.push(await loadExperiment(n, dir));
    } catch (e) {
      out.skipped.push({ file, reason: `it fails to load: ${(e as Error).message}` });
    }
  }
  return out;
}
