/** Embedding forward/backward vs the f64 reference, CSR validation, meta parity. */

import assert from "node:assert/strict";
import { embeddingBackward, embeddingForward, embeddingGradIndex } from "../lib/ops/embedding.ts";
import { embeddingBackwardRef, embeddingForwardRef } from "../lib/reference/embedding.ts";
import { assertAllClose, finiteDifferences, randomArray, rng } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

const S = 37, V = 101, d = 26;

function randomIds(n: number, seed: number, vocab: number): Int32Array {
  const r = rng(seed);
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = Math.floor(r() * vocab);
  const rep = Math.min(7, vocab - 1); // a repeated token
  for (const i of [3, 5, 30]) if (i < n) ids[i] = rep;
  return ids;
}

Deno.test("embedding reference backward matches finite differences", () => {
  const ids = randomIds(9, 1, 5);
  const table = randomArray(5 * 3, 2);
  const g = randomArray(9 * 3, 3);
  const loss = (t: Float64Array) =>
    embeddingForwardRef(ids, t, 5, 3, 0.7).reduce((a, y, i) => a + y * g[i], 0);
  const fd = finiteDifferences(loss, table);
  const an = embeddingBackwardRef(ids, g, new Float64Array(15), 3, 0.7);
  assertAllClose(an, fd, { atol: 1e-8, rtol: 1e-6 });
});

Deno.test("embedding forward and backward on webgpu match the reference", gpuTest, async () => {
  const dev = await testDevice();
  const ids = randomIds(S, 11, V);
  const table = randomArray(V * d, 12);
  const dy = randomArray(S * d, 13);
  const dt0 = randomArray(V * d, 14);
  const idsT = dev.upload(ids, [S], { tag: "data" });
  const tableT = dev.upload(Float32Array.from(table), [V, d], { tag: "weights" });
  const y = embeddingForward(dev, idsT, tableT, { scale: 1.5 });
  assertAllClose(await dev.readF32(y), embeddingForwardRef(ids, table, V, d, 1.5), {}, "y");
  const index = embeddingGradIndex(dev, ids, V);
  const dyT = dev.upload(Float32Array.from(dy), [S, d], { tag: "activations" });
  const dTable = dev.upload(Float32Array.from(dt0), [V, d], { tag: "grads" });
  embeddingBackward(dev, index, dyT, dTable, { scale: 0.5 });
  const want = embeddingBackwardRef(ids, dy, Float64Array.from(dt0), d, 0.5);
  assertAllClose(await dev.readF32(dTable), want, {}, "dTable");
  for (const t of [idsT, tableT, y, dyT, dTable]) t.dispose();
  index.dispose();
});

Deno.test("embeddingGradIndex rejects out-of-range ids", gpuTest, async () => {
  const dev = await testDevice();
  assert.throws(
    () => embeddingGradIndex(dev, Int32Array.from([0, 4, 5]), 5),
    /token id 5 at position 2 is outside the vocabulary 0\.\.4/,
  );
  assert.throws(() => embeddingGradIndex(dev, Int32Array.from([-1]), 5), /token id -1/);
});

Deno.test("embedding forward gives a NaN row for an out-of-range id", gpuTest, async () => {
  const dev = await testDevice();
  const idsT = dev.upload(Int32Array.from([1, 4, -1]), [3], { tag: "data" });
  const table = dev.upload(Float32Array.from(randomArray(8, 1)), [4, 2], { tag: "weights" });
  const yT = embeddingForward(dev, idsT, table);
  const y = await dev.readF32(yT);
  assert.ok(y.slice(0, 2).every(Number.isFinite));
  assert.ok(y.slice(2).every(Number.isNaN));
  for (const t of [idsT, table, yT]) t.dispose();
});

Deno.test("embedding shape errors say expected vs got", gpuTest, async () => {
  const dev = await testDevice();
  const index = embeddingGradIndex(dev, Int32Array.from([1, 2]), 4);
  const dy = dev.tensor([3, 8], { tag: "activations" });
  const dt = dev.tensor([4, 8], { tag: "grads" });
  assert.throws(
    () => embeddingBackward(dev, index, dy, dt),
    /expected shape \[2, 8\], got \[3, 8\]/,
  );
  for (const t of [dy, dt]) t.dispose();
  index.dispose();
});

Deno.test("embedding allocates the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  const ids = randomIds(S, 5, V);
  await assertSameAllocations(dev, (dv) => {
    const idsT = dv.upload(ids, [S], { tag: "data" });
    const table = dv.zeros([V, d], { tag: "weights" });
    const y = embeddingForward(dv, idsT, table);
    const index = embeddingGradIndex(dv, ids, V);
    embeddingBackward(dv, index, y, table);
    index.dispose();
    for (const t of [idsT, table, y]) t.dispose();
  });
});
