/**
 * The settings of a `deno task train` run and its history, saved with every checkpoint
 * (`state.json` → `extra`), and how `--resume DIR` combines them with the command line:
 *
 * - What changes the numbers — `--data`, `--seq`, `--seed`, `--lr` — comes from the
 *   checkpoint; the same value may be given again, a different one is refused.
 * - `--steps K` means K more steps after the checkpoint's step (the run's planned total
 *   becomes step + K); without it the run continues to the total it was started with, so
 *   `train --resume DIR` after a crash finishes the run that was interrupted.
 * - The schedule — `--eval-every`, `--eval-batches`, `--save-every` — comes from the
 *   checkpoint unless given.
 *
 * The policy (MsT, recomputation, head, optimizer-in-backward) is saved too; `tasks/train.ts`
 * uses it unless policy flags are given.
 */

import type { JsonValue } from "../checkpoint/run_state.ts";
import { parseNumber, parsePositiveInt } from "../cli/args.ts";

/** Everything that fixes a training run besides the model config and the policy. */
export interface TrainSettings {
  /** Batch source: `repeat` or `brown`. */
  data: string;
  /** S: tokens per sequence. */
  seq: number;
  /** Seed of the initialization and of the data order. */
  seed: number;
  /** AdamW learning rate. */
  lr: number;
  /** Optimizer steps the run is planned to reach. */
  totalSteps: number;
  /** Validation every this many steps (and at the last step). */
  evalEvery: number;
  /** Validation windows per evaluation. */
  evalBatches: number;
  /** A checkpoint every this many steps; null: only at the end. */
  saveEvery: number | null;
}

/** Losses of a run so far, across resumes. */
export interface TrainHistory {
  /** Training loss of every step, step 1 first. */
  losses: number[];
  /** Validation losses and the step they were measured at. */
  valLosses: { step: number; loss: number }[];
}

/** The command-line flags that feed {@link TrainSettings} (strings as parsed). */
export interface TrainFlags {
  steps?: string;
  data?: string;
  seq?: string;
  seed?: string;
  lr?: string;
  "eval-every"?: string;
  "eval-batches"?: string;
  "save-every"?: string;
}

/** What a checkpoint says about its run (`extra` of `state.json`). */
export interface SavedTrainRun {
  /** Optimizer steps completed. */
  step: number;
  /** The checkpoint's `extra`. */
  extra: { [key: string]: JsonValue };
}

/** Defaults of a new run. */
const TRAIN_DEFAULTS = {
  data: "repeat",
  seq: 256,
  seed: 1,
  lr: 3e-3,
  steps: 20,
  evalBatches: 4,
} as const;

/** The settings saved by this version, or those of an older checkpoint (fewer fields). */
function savedSettings(extra: { [key: string]: JsonValue }): Partial<TrainSettings> {
  const s = extra.settings;
  if (s && typeof s === "object" && !Array.isArray(s)) return s as Partial<TrainSettings>;
  // earlier checkpoints saved only these
  const old: Partial<TrainSettings> = {};
  if (typeof extra.dataKind === "string") old.data = extra.dataKind;
  if (typeof extra.seq === "number") old.seq = extra.seq;
  if (typeof extra.seed === "number") old.seed = extra.seed;
  return old;
}

/** The history saved in a checkpoint (empty for older checkpoints). */
export function savedHistory(saved: SavedTrainRun): TrainHistory {
  const h = saved.extra.history as Partial<TrainHistory> | undefined;
  return { losses: [...(h?.losses ?? [])], valLosses: [...(h?.valLosses ?? [])] };
}

/** `extra` for a checkpoint: the settings and the history. */
export function trainExtra(settings: TrainSettings, history: TrainHistory): {
  [key: string]: JsonValue;
} {
  return {
    settings: { ...settings },
    history: { losses: [...history.losses], valLosses: history.valLosses.map((v) => ({ ...v })) },
  };
}

/**
 * The settings of a new run (`saved` null) or of a resumed one (module doc).
 * @throws Error naming the flag for a bad value, or for a value that contradicts the
 *   checkpoint, saying what the checkpoint holds.
 */
export function trainSettings(
  flags: TrainFlags,
  saved: SavedTrainRun | null,
  where = "--resume",
): TrainSettings {
  const old = saved ? savedSettings(saved.extra) : {};
  const fixed = <T>(flag: string, given: T | undefined, was: T | undefined, dflt: T): T => {
    if (given !== undefined && was !== undefined && given !== was) {
      throw new Error(
        `${where}: the run was saved with ${flag} ${was}, not ${given}; drop ${flag} ` +
          `(the checkpoint's value is used) to continue it exactly`,
      );
    }
    return given ?? was ?? dflt;
  };
  const maybeInt = (flag: string, v: string | undefined) =>
    v === undefined ? undefined : parsePositiveInt(flag, v, 0);
  const data = fixed("--data", flags.data, old.data, TRAIN_DEFAULTS.data);
  const seq = fixed("--seq", maybeInt("--seq", flags.seq), old.seq, TRAIN_DEFAULTS.seq);
  const seed = fixed("--seed", maybeInt("--seed", flags.seed), old.seed, TRAIN_DEFAULTS.seed);
  const lr = fixed(
    "--lr",
    flags.lr === undefined ? undefined : parseNumber("--lr", flags.lr, 0),
    old.lr,
    TRAIN_DEFAULTS.lr,
  );
  const more = maybeInt("--steps", flags.steps);
  const step = saved?.step ?? 0;
  const totalSteps = more !== undefined
    ? step + more
    : saved
    ? old.totalSteps ?? step
    : TRAIN_DEFAULTS.steps;
  return {
    data,
    seq,
    seed,
    lr,
    totalSteps,
    evalEvery: maybeInt("--eval-every", flags["eval-every"]) ?? old.evalEvery ??
      Math.max(1, totalSteps),
    evalBatches: maybeInt("--eval-batches", flags["eval-batches"]) ?? old.evalBatches ??
      TRAIN_DEFAULTS.evalBatches,
    saveEvery: maybeInt("--save-every", flags["save-every"]) ?? old.saveEvery ?? null,
  };
}
