/**
 * Tokenizers: lossless round trips on the whole Brown validation split, exact reduced
 * vocabulary size, deterministic builds, and the build cache.
 */

import { deepEqual, equal, ok, throws } from "@std/assert";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brownSplit, brownSplitText } from "../lib/data/brown.ts";
import { loadOrBuildReducedBpe, ReducedBpeTokenizer } from "../lib/data/reduced_bpe.ts";
import { ByteTokenizer } from "../lib/data/tokenizer.ts";
import { encodeCached } from "../lib/data/corpus.ts";

const V = 2048; // llama3-tiny

function assertIdsInRange(ids: number[], vocabSize: number, what: string) {
  for (let i = 0; i < ids.length; i++) {
    if (!(ids[i] >= 0 && ids[i] < vocabSize && Number.isInteger(ids[i]))) {
      throw new Error(`${what}: id ${ids[i]} at ${i} outside [0, ${vocabSize})`);
    }
  }
}

const TRICKY = [
  "",
  "naïve café — “quotes” 😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 中文 한국어",
  "<|endoftext|> stays text",
  "tabs\tand\r\nnewlines\n\n\n  spaces   ",
  "\u0000\u0001 control \uFEFF",
];

Deno.test("byte tokenizer round-trips the whole validation split", async () => {
  const tok = new ByteTokenizer();
  equal(tok.vocabSize, 256);
  const text = await brownSplitText("validation");
  const ids = tok.encode(text);
  assertIdsInRange(ids, 256, "byte");
  equal(tok.decode(ids), text);
  for (const t of TRICKY) equal(tok.decode(tok.encode(t)), t);
  throws(() => tok.decode([256]), /not in \[0, 256\)/);
});

Deno.test("reduced BPE: built from the training split, lossless on validation, cached", async () => {
  const train = (await brownSplit("train")).map((d) => d.text);
  const dir = await mkdtemp(join(tmpdir(), "reduced-bpe-"));
  try {
    const built = await loadOrBuildReducedBpe(train, V, { cacheDir: dir });
    equal(built.fromCache, false);
    console.log(
      `reduced BPE V=${V}: built from the training split in ${built.buildMs.toFixed(0)} ms`,
    );
    const tok = built.tokenizer;
    equal(tok.vocabSize, V);
    equal(tok.keptTokens.length, V - 256);
    equal(new Set(tok.keptTokens).size, V - 256);

    const text = await brownSplitText("validation");
    const ids = tok.encode(text);
    assertIdsInRange(ids, V, "reduced BPE");
    equal(tok.decode(ids), text);
    // per document too (document boundaries change cl100k's pre-tokenization)
    for (const doc of await brownSplit("validation")) {
      equal(tok.decode(tok.encode(doc.text)), doc.text);
    }
    for (const t of TRICKY) equal(tok.decode(tok.encode(t)), t);
    // it compresses (V=2048: ~1.85 bytes per id on Brown)
    const bytes = new TextEncoder().encode(text).length;
    ok(ids.length < 0.6 * bytes, `${ids.length} ids for ${bytes} bytes`);

    // the cache gives the same vocabulary; the file was written atomically (no temp left)
    const cached = await loadOrBuildReducedBpe(train, V, { cacheDir: dir });
    equal(cached.fromCache, true);
    deepEqual(cached.tokenizer.keptTokens, tok.keptTokens);
    deepEqual((await readdir(dir)).filter((f) => f.includes(".tmp-")), []);
  } finally {
    await rm(dir, { recursive: true });
  }
});

Deno.test("reduced BPE: deterministic builds, exact V, range errors", async () => {
  const texts = (await brownSplit("validation")).map((d) => d.text);
  const a = ReducedBpeTokenizer.build(texts, 512);
  const b = ReducedBpeTokenizer.build(texts, 512);
  deepEqual(a.keptTokens, b.keptTokens);
  equal(a.vocabSize, 512);
  // tiny corpus: V larger than the distinct tokens seen is filled deterministically
  const c = ReducedBpeTokenizer.build(["hello hello world"], 300);
  equal(c.vocabSize, 300);
  equal(c.decode(c.encode("hello world, unseen words")), "hello world, unseen words");
  ok(c.encode("hello hello").length === 2, "kept tokens encode to one id each");
  deepEqual(ReducedBpeTokenizer.fromJSON(a.toJSON()).keptTokens, a.keptTokens);
  throws(() => ReducedBpeTokenizer.build(texts, 255), /vocabSize must be an integer in \[256/);
  throws(() => a.decode([512]), /id 512 is not in \[0, 512\)/);
  throws(() => new ReducedBpeTokenizer([40]), /single byte/);
});

Deno.test("reduced BPE: a corrupt cache file is rebuilt and replaced", async () => {
  const texts = (await brownSplit("validation")).map((d) => d.text);
  const dir = await mkdtemp(join(tmpdir(), "reduced-bpe-"));
  try {
    const first = await loadOrBuildReducedBpe(texts, 512, { cacheDir: dir });
    await writeFile(first.cacheFile!, "{not json");
    const rebuilt = await loadOrBuildReducedBpe(texts, 512, { cacheDir: dir });
    equal(rebuilt.fromCache, false);
    deepEqual(rebuilt.tokenizer.keptTokens, first.tokenizer.keptTokens);
    equal((await loadOrBuildReducedBpe(texts, 512, { cacheDir: dir })).fromCache, true);
  } finally {
    await rm(dir, { recursive: true });
  }
});

Deno.test("token cache: the cached stream equals encode; a new tokenizer or text misses; a bad file is rewritten", async () => {
  const texts = (await brownSplit("validation")).map((d) => d.text);
  const text = texts.slice(0, 5).join("\n\n");
  const dir = await mkdtemp(join(tmpdir(), "token-cache-"));
  try {
    const bpe = (await loadOrBuildReducedBpe(texts, 512, { cacheDir: dir })).tokenizer;
    const direct = bpe.encode(text);
    const first = await encodeCached(bpe, text, dir);
    deepEqual(Array.from(first), direct);
    const files = (await readdir(dir)).filter((f) => f.endsWith(".i32"));
    equal(files.length, 1);
    // a hit reads the file: corrupt it with a valid length and the hit shows the corruption
    const poisoned = Int32Array.from(direct, () => 7);
    await writeFile(join(dir, files[0]), new Uint8Array(poisoned.buffer));
    deepEqual(Array.from(await encodeCached(bpe, text, dir)), Array.from(poisoned));
    // another tokenizer (V) or another text is another key
    const bpe2 = (await loadOrBuildReducedBpe(texts, 600, { cacheDir: dir })).tokenizer;
    deepEqual(Array.from(await encodeCached(bpe2, text, dir)), bpe2.encode(text));
    deepEqual(Array.from(await encodeCached(bpe, text + "!", dir)), bpe.encode(text + "!"));
    equal((await readdir(dir)).filter((f) => f.endsWith(".i32")).length, 3);
    // a file of the wrong length is ignored and rewritten
    await writeFile(join(dir, files[0]), new Uint8Array([1, 2, 3]));
    deepEqual(Array.from(await encodeCached(bpe, text, dir)), direct);
    deepEqual(Array.from(await encodeCached(bpe, text, dir)), direct);
  } finally {
    await rm(dir, { recursive: true });
  }
});
