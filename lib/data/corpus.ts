/**
 * The Brown corpus prepared for a model: a tokenizer for the model's V (bytes when V = 256,
 * otherwise the reduced cl100k BPE of `reduced_bpe.ts`, built on the training split and
 * cached under `.cache/tokenizers/`), token streams of both splits, and resumable windows.
 */

import type { ModelConfig } from "../models/config.ts";
import type { Batch } from "../models/model.ts";
import { WindowStream, type WindowStreamState } from "./batches.ts";
import { brownSplitText } from "./brown.ts";
import { loadOrBuildReducedBpe } from "./reduced_bpe.ts";
import { ByteTokenizer, type Tokenizer } from "./tokenizer.ts";

/** Where built tokenizers are cached (relative to the repository). */
export const TOKENIZER_CACHE = new URL("../../.cache/tokenizers/", import.meta.url).pathname;

/** A tokenizer whose ids fill exactly the model's vocabulary. */
export async function tokenizerFor(vocabSize: number): Promise<Tokenizer> {
  if (vocabSize === 256) return new ByteTokenizer();
  if (vocabSize < 256) {
    throw new Error(
      `V=${vocabSize} is too small for the Brown corpus: use V=256 (bytes) or V>256 (reduced BPE)`,
    );
  }
  const train = await brownSplitText("train");
  return (await loadOrBuildReducedBpe([train], vocabSize, { cacheDir: TOKENIZER_CACHE })).tokenizer;
}

/** Token streams of both splits. */
export interface BrownTokens {
  tokenizer: Tokenizer;
  train: Int32Array;
  validation: Int32Array;
}

const cache = new Map<number, Promise<BrownTokens>>();

/** Tokenizes both splits for V (memoized per process). */
export function brownTokens(vocabSize: number): Promise<BrownTokens> {
  let p = cache.get(vocabSize);
  if (!p) {
    p = (async () => {
      const tokenizer = await tokenizerFor(vocabSize);
      const train = Int32Array.from(tokenizer.encode(await brownSplitText("train")));
      const validation = Int32Array.from(tokenizer.encode(await brownSplitText("validation")));
      return { tokenizer, train, validation };
    })();
    cache.set(vocabSize, p);
  }
  return p;
}

/** Training batches from the Brown corpus, resumable. */
export interface BrownSource {
  description: string;
  next(): Batch;
  state(): WindowStreamState;
  restore(s: WindowStreamState): void;
  /** `count` fixed validation windows (the same every call). */
  validationBatches(count: number): Batch[];
}

/** Brown-corpus batches of S tokens for a model. */
export async function brownBatches(
  cfg: ModelConfig,
  S: number,
  seed: number,
): Promise<BrownSource> {
  const t = await brownTokens(cfg.vocabSize);
  const stream = new WindowStream(t.train, { seqLen: S, seed });
  return {
    description:
      `brown (${t.train.length} train / ${t.validation.length} validation tokens, V=${cfg.vocabSize})`,
    next: () => {
      const w = stream.next();
      return { ids: w.inputs, targets: w.targets };
    },
    state: () => stream.state(),
    restore: (s) => stream.restore(s),
    validationBatches: (count) => {
      const v = new WindowStream(t.validation, { seqLen: S, seed: 0, shuffle: false });
      const n = Math.min(count, v.windowsPerEpoch);
      return Array.from({ length: n }, () => {
        const w = v.next();
        return { ids: w.inputs, targets: w.targets };
      });
    },
  };
}
