/**
 * Training batches for the tasks: `repeat` (one fixed random sequence, repeated: a model
 * that learns must overfit it) or `brown` (the Brown corpus, tokenized for the model's V).
 */

import { checkInteger, checkSeq } from "../util/validate.ts";
import type { ModelConfig } from "../config/model_config.ts";
import type { Batch } from "../models/model.ts";
import type { JsonValue } from "../checkpoint/run_state.ts";
import type { WindowStreamState } from "../data/batches.ts";
import { rng } from "../util/random.ts";

/** A stream of batches. */
export interface BatchSource {
  /** What the batches are, for logs (e.g. "repeat (one random sequence)"). */
  description: string;
  /** The next batch. */
  next(): Batch;
  /** Position of the stream (JSON), for saving a run; null when stateless. */
  state(): JsonValue;
  /** Continues from a saved position. */
  restore(state: JsonValue): void;
  /** Fixed validation batches, when the source has a validation split. */
  validationBatches?(count: number): Batch[];
}

/** Creates the batch source named `kind`. */
export async function makeBatches(
  kind: string,
  cfg: ModelConfig,
  S: number,
  seed: number,
): Promise<BatchSource> {
  checkSeq("makeBatches", S, "S");
  checkInteger("makeBatches", "seed", seed, { min: 0 });
  if (kind === "repeat") {
    const r = rng(seed * 7919 + 17);
    const tokens = Int32Array.from({ length: S + 1 }, () => Math.floor(r() * cfg.vocabSize));
    const batch = { ids: tokens.slice(0, S), targets: tokens.slice(1) };
    return {
      description: "repeat (one random sequence)",
      next: () => batch,
      state: () => null,
      restore: () => {},
    };
  }
  if (kind === "brown") {
    const { brownBatches } = await import("../data/corpus.ts");
    const src = await brownBatches(cfg, S, seed);
    return {
      description: src.description,
      next: src.next,
      state: () => src.state() as unknown as JsonValue,
      restore: (s) => src.restore(s as unknown as WindowStreamState),
      validationBatches: src.validationBatches,
    };
  }
  throw new Error(`--data: unknown data source "${kind}"; use repeat or brown`);
}
