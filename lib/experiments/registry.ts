/**
 * The experiment registry: every `experiments/<name>.ts` of the repository whose default
 * export is a {@link Experiment} named `<name>`.
 */

import type { Experiment } from "./define.ts";
import type { ExperimentConfig } from "./config.ts";

/** The repository's `experiments/` directory. */
export const EXPERIMENTS_DIR = new URL("../../experiments/", import.meta.url);

/** Names of the experiments (file names without `.ts`), sorted. */
export async function experimentNames(dir: URL = EXPERIMENTS_DIR): Promise<string[]> {
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

/** Loads an experiment by name; an unknown name lists the known ones. */
export async function loadExperiment(
  name: string,
  dir: URL = EXPERIMENTS_DIR,
): Promise<Experiment<ExperimentConfig>> {
  const names = await experimentNames(dir);
  if (!names.includes(name)) {
    throw new Error(
      `unknown experiment "${name}"; known experiments: ${names.join(", ") || "(none)"}` +
        `\n(run \`deno task exp --list\` for descriptions)`,
    );
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

/** Every experiment, loaded (for `--list`). */
export async function listExperiments(
  dir: URL = EXPERIMENTS_DIR,
): Promise<Experiment<ExperimentConfig>[]> {
  const out = [];
  for (const n of await experimentNames(dir)) out.push(await loadExperiment(n, dir));
  return out;
}
