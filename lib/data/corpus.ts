/**
 * The Brown corpus prepared for a model: a tokenizer for the model's V (bytes when V = 256,
 * otherwise the reduced cl100k BPE of `reduced_bpe.ts`, built on the training split and
 * cached under `.cache/tokenizers/`), token streams of both splits (cached under
 * `.cache/tokens/`, keyed by the tokenizer and the text), and resumable windows.
 */

import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import type { ModelConfig } from "../config/model_config.ts";
import type { Batch } from "./batch.ts";
import { WindowStream, type WindowStreamState } from "./batches.ts";
import { brownSplitText } from "./brown.ts";
import { loadOrBuildReducedBpe } from "./reduced_bpe.ts";
import { ByteTokenizer, type Tokenizer } from "./tokenizer.ts";
import { writeFileAtomic } from "../util/atomic_write.ts";

/** Where built tokenizers are cached (relative to the repository). */
export const TOKENIZER_CACHE = new URL("../../.cache/tokenizers/", import.meta.url).pathname;

/** Where encoded token streams are cached (relative to the repository). */
export const TOKEN_CACHE = new URL("../../.cache/tokens/", import.meta.url).pathname;

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
      const train = await encodeCached(tokenizer, await brownSplitText("train"));
      const validation = await encodeCached(tokenizer, await brownSplitText("validation"));
      return { tokenizer, train, validation };
    })();
    cache.set(vocabSize, p);
  }
  return p;
}

/**
 * `tokenizer.encode(text)` as an Int32Array, read from `.cache/tokens/` when this tokenizer
 * (its serialized form) has encoded this exact text before; encoding the training split
 * costs seconds per process. The file is raw little-endian int32s, written atomically; one
 * that is unreadable or has the wrong length is ignored and rewritten.
 */
export async function encodeCached(
  tokenizer: Tokenizer,
  text: string,
  cacheDir: string = TOKEN_CACHE,
): Promise<Int32Array> {
  const identity = "toJSON" in tokenizer && typeof tokenizer.toJSON === "function"
    ? JSON.stringify(tokenizer.toJSON())
    : tokenizer.constructor.name;
  const key = createHash("sha256").update(`tokens-v1\0${identity}\0${text}`).digest("hex");
  const file = join(cacheDir, `${key.slice(0, 24)}.i32`);
  try {
    const bytes = await readFile(file);
    if (bytes.byteLength % 4 === 0 && bytes.byteLength > 0) {
      const ids = new Int32Array(bytes.byteLength / 4);
      new Uint8Array(ids.buffer).set(bytes);
      return ids;
    }
  } catch {
    // missing or unreadable: encode below
  }
  const ids = Int32Array.from(tokenizer.encode(text));
  if (ids.length > 0) {
    await mkdir(cacheDir, { recursive: true });
    await writeFileAtomic(file, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
  }
  return ids;
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
