/**
 * A checkpoint directory that survives a crash (`train --save DIR --save-every N`).
 *
 * ```
 * DIR/
 *   checkpoint.json        the commit point: {"format", "step", "path": "step-00000060"}
 *   step-00000060/         one complete run state (`run_state.ts`): model.safetensors,
 *                          optimizer.safetensors, state.json
 * ```
 *
 * A save writes the new run state into `DIR/.partial-step-<step>-<pid>/`, flushes every file
 * and the directory to disk, renames it to `DIR/step-<step>/`, then replaces `checkpoint.json`
 * atomically (temporary name, flush, rename, flush the directory). Only then is the previous
 * step directory removed. A kill (or power loss) at any moment therefore leaves
 * `checkpoint.json` naming a complete checkpoint: the previous one until the rename of the
 * pointer, the new one after it. Leftovers of an interrupted save (`.partial-*`, a step
 * directory the pointer does not name, a pointer's temporary file) are removed by
 * {@link cleanCheckpointDir}, which a run calls before it starts saving into the directory.
 *
 * One run saves into a directory at a time; only names of the forms above are ever removed.
 * For a test to interrupt a save on purpose, `MST_CHECKPOINT_PAUSE_MS=<ms>` pauses each save
 * after its files are written and before the rename that publishes it.
 */

import { join } from "node:path";
import { loadRunState, RUN_FILES, type RunState, saveRunState } from "./run_state.ts";
import { exists, readTextIfExists } from "../util/fs.ts";

/** File name of the commit point inside a checkpoint directory. */
export const CHECKPOINT_POINTER = "checkpoint.json";

/** `checkpoint.json` format tag. */
const CHECKPOINT_FORMAT = "mst-checkpoint-v1";

/** Environment variable: milliseconds to pause inside each save, before it is published. */
export const CHECKPOINT_PAUSE_ENV = "MST_CHECKPOINT_PAUSE_MS";

/** Contents of `checkpoint.json`. */
export interface CheckpointPointer {
  format: typeof CHECKPOINT_FORMAT;
  /** Optimizer steps of the committed checkpoint. */
  step: number;
  /** Its directory, relative to the checkpoint directory (`step-<8 digits>`). */
  path: string;
}

const STEP_DIR = /^step-\d{8,}$/;
const PARTIAL = /^\.partial-step-\d{8,}-\d+$/;
const POINTER_TMP = /^checkpoint\.json\.tmp-\d+$/;

/** `step-00000060`: the directory name of the checkpoint at `step`. */
export function stepDirName(step: number): string {
  if (!Number.isInteger(step) || step < 0) {
    throw new Error(`checkpoint step must be an integer >= 0, got ${step}`);
  }
  return `step-${String(step).padStart(8, "0")}`;
}

/** Removes a file or directory tree; nothing when it does not exist. */
async function remove(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** Flushes a file or directory to disk (directories only where the OS allows opening them). */
async function flush(path: string, isDir = false): Promise<void> {
  if (isDir && Deno.build.os === "windows") return;
  const f = await Deno.open(path, { read: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}

/** Writes `dir/name` through a temporary name, flushed to disk before and after the rename. */
async function writeDurable(dir: string, name: string, text: string): Promise<void> {
  const tmp = join(dir, `${name}.tmp-${Deno.pid}`);
  try {
    await Deno.writeTextFile(tmp, text);
    await flush(tmp);
    await Deno.rename(tmp, join(dir, name));
  } catch (e) {
    await remove(tmp);
    throw e;
  }
  await flush(dir, true);
}

/**
 * Reads `DIR/checkpoint.json`; null when the directory (or the pointer) does not exist.
 * @throws Error for a pointer that is not valid JSON of the expected format.
 */
export async function readCheckpointPointer(dir: string): Promise<CheckpointPointer | null> {
  const path = join(dir, CHECKPOINT_POINTER);
  const text = await readTextIfExists(path);
  if (text === null) return null;
  let p: Partial<CheckpointPointer>;
  try {
    p = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message})`);
  }
  if (
    p.format !== CHECKPOINT_FORMAT || !Number.isInteger(p.step) || (p.step as number) < 0 ||
    typeof p.path !== "string" || p.path !== stepDirName(p.step as number)
  ) {
    throw new Error(
      `${path} is not a ${CHECKPOINT_FORMAT} pointer ({"format", "step", "path": "step-<step>"}): ` +
        text.slice(0, 200),
    );
  }
  return p as CheckpointPointer;
}

/**
 * Removes what an interrupted save left in `dir`: `.partial-step-*` directories, step
 * directories that `checkpoint.json` does not name, and the pointer's temporary files.
 * Returns the names removed (empty when there were none or `dir` does not exist).
 */
export async function cleanCheckpointDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const pointer = await readCheckpointPointer(dir);
  const stale = names.filter((n) =>
    PARTIAL.test(n) || POINTER_TMP.test(n) || (STEP_DIR.test(n) && n !== pointer?.path)
  ).sort();
  for (const n of stale) await remove(join(dir, n));
  return stale;
}

async function pause(): Promise<void> {
  let text: string | undefined;
  try {
    text = Deno.env.get(CHECKPOINT_PAUSE_ENV);
  } catch {
    return; // no --allow-env: no pause
  }
  const ms = Number(text);
  if (text && Number.isFinite(ms) && ms > 0) await new Promise((r) => setTimeout(r, ms));
}

/**
 * Saves `state` as the checkpoint of `dir` (created if needed) in the crash-safe way of the
 * module doc, and removes the checkpoint it replaces. A checkpoint already committed at the
 * same step is kept as it is (the run is deterministic: it would be the same bytes).
 * @returns the step directory holding the checkpoint.
 * @throws Error from {@link saveRunState} (weights, moments and step are checked first).
 */
export async function commitCheckpoint(dir: string, state: RunState): Promise<string> {
  const step = state.info.step;
  const name = stepDirName(step);
  await Deno.mkdir(dir, { recursive: true });
  const previous = await readCheckpointPointer(dir);
  const target = join(dir, name);
  if (previous?.step === step && await exists(join(target, RUN_FILES.state))) return target;
  const partial = join(dir, `.partial-${name}-${Deno.pid}`);
  await remove(partial);
  await saveRunState(partial, state);
  for (const f of Object.values(RUN_FILES)) await flush(join(partial, f));
  await flush(partial, true);
  await pause();
  // a step directory of this name that the pointer does not name is a leftover
  await remove(target);
  await Deno.rename(partial, target);
  await flush(dir, true);
  const pointer: CheckpointPointer = { format: CHECKPOINT_FORMAT, step, path: name };
  await writeDurable(dir, CHECKPOINT_POINTER, JSON.stringify(pointer) + "\n");
  if (previous && previous.path !== name) {
    await remove(join(dir, previous.path));
  }
  return target;
}

/**
 * Loads the committed checkpoint of `dir`. A directory written by `saveRunState` itself
 * (`state.json` at the top, the layout of earlier versions) is loaded as it is.
 * @throws Error when `dir` holds no checkpoint, saying what was expected, or from
 *   {@link loadRunState} for a damaged one.
 */
export async function loadCheckpoint(dir: string): Promise<RunState> {
  const pointer = await readCheckpointPointer(dir);
  if (!pointer) {
    if (await exists(join(dir, RUN_FILES.state))) return loadRunState(dir);
    throw new Error(
      `${dir} holds no checkpoint (no ${CHECKPOINT_POINTER}); ` +
        `give the directory a run was saved to with --save DIR`,
    );
  }
  const state = await loadRunState(join(dir, pointer.path));
  if (state.info.step !== pointer.step) {
    throw new Error(
      `${join(dir, CHECKPOINT_POINTER)} names step ${pointer.step} but ${pointer.path} ` +
        `holds step ${state.info.step}`,
    );
  }
  return state;
}
