/**
 * Training batches for the tasks: `repeat` (one fixed random sequence, repeated: a model
 * that learns must overfit it) or `brown` (the Brown corpus, tokenized for the model's V).
 */

import type { ModelConfig } from "../models/config.ts";
import type { Batch } from "../models/model.ts";
import { rng } from "../testing/all_close.ts";

/** A stream of batches. */
export interface BatchSource {
  description: string;
  next(): Batch;
}

/** Creates the batch source named `kind`. */
export async function makeBatches(
  kind: string,
  cfg: ModelConfig,
  S: number,
  seed: number,
): Promise<BatchSource> {
  if (kind === "repeat") {
    const r = rng(seed * 7919 + 17);
    const tokens = Int32Array.from({ length: S + 1 }, () => Math.floor(r() * cfg.vocabSize));
    const batch = { ids: tokens.slice(0, S), targets: tokens.slice(1) };
    return { description: "repeat (one random sequence)", next: () => batch };
  }
  if (kind === "brown") {
    const { brownBatches } = await import("../data/corpus.ts");
    return await brownBatches(cfg, S, seed);
  }
  throw new Error(`--data: unknown data source "${kind}"; use repeat or brown`);
}
