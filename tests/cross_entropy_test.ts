/** Cross-entropy losses/backward vs the f64 reference: ignored rows, soft-caps, in place, meta parity. */

import assert from "node:assert/strict";
import {
  CE_MAX_THREADS,
  CE_REGISTER_TEXELS,
  CE_REGISTER_TEXELS_CAPPED,
  crossEntropyBackward,
  crossEntropyFused,
  crossEntropyLosses,
  crossEntropyShape,
} from "../lib/ops/cross_entropy.ts";
import { crossEntropyBackwardRef, crossEntropyLossesRef } from "../lib/reference/cross_entropy.ts";
import { assertAllClose, finiteDifferences, randomArray, rng } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

function randomTargets(N: number, V: number, seed: number, ignoreIndex = -100): Int32Array {
  const r = rng(seed);
  const t = new Int32Array(N);
  for (let i = 0; i < N; i++) t[i] = Math.floor(r() * V);
  for (let i = 2; i < N; i += 7) t[i] = ignoreIndex;
  return t;
}

for (const softcap of [0, 5]) {
  Deno.test(`cross-entropy reference backward matches finite differences (softcap ${softcap})`, () => {
    const N = 4, V = 6;
    const logits = randomArray(N * V, 1, 8);
    const targets = Int32Array.from([2, -100, 5, 0]);
    const scale = 0.3;
    const loss = (x: Float64Array) =>
      scale * crossEntropyLossesRef(x, targets, N, V, softcap).reduce((a, b) => a + b, 0);
    const an = crossEntropyBackwardRef(logits, targets, N, V, scale, softcap);
    assertAllClose(an, finiteDifferences(loss, logits), { atol: 1e-8, rtol: 1e-6 });
  });
}

const CASES = [
  { N: 37, V: 101, softcap: 0, scale: 3 },
  { N: 37, V: 101, softcap: 30, scale: 40 },
  { N: 5, V: 3001, softcap: 0, scale: 20 },
  { N: 5, V: 3001, softcap: 10, scale: 20 },
  // V % 4 = 0: the vec4 kernel (cross_entropy_fused): rows held in registers, V/4 not a
  // multiple of the threads per row, N not a multiple of the rows per workgroup
  { N: 37, V: 148, softcap: 0, scale: 3 },
  { N: 37, V: 148, softcap: 30, scale: 40 },
  { N: 5, V: 3004, softcap: 0, scale: 20 },
  { N: 70, V: 2048, softcap: 0, scale: 20 },
  { N: 9, V: 2048, softcap: 30, scale: 40 },
  // V/4 beyond the registers of 256 threads: the tail of each row is streamed
  { N: 3, V: 33000, softcap: 0, scale: 20 },
  { N: 3, V: 33000, softcap: 10, scale: 20 },
];

Deno.test("cross-entropy shape: whole rows in registers up to 256 threads, then a streamed tail", () => {
  const budgets: [boolean, number][] = [[false, CE_REGISTER_TEXELS], [
    true,
    CE_REGISTER_TEXELS_CAPPED,
  ]];
  for (const [capped, most] of budgets) {
    for (const v4 of [1, 37, 512, 751, 256 * most]) {
      const { threads, texels, rows } = crossEntropyShape(v4, capped);
      assert.ok(threads * texels >= v4 && texels <= most, `V/4 = ${v4} ${capped}`);
      assert.ok(threads * rows <= 256 && (threads & (threads - 1)) === 0, `V/4 = ${v4}`);
    }
    // the streamed-tail cases above
    const big = crossEntropyShape(33000 / 4, capped);
    assert.ok(big.threads === CE_MAX_THREADS && big.threads * big.texels < 33000 / 4);
  }
});

for (const { N, V, softcap, scale } of CASES) {
  Deno.test(
    `cross-entropy on webgpu matches the reference (N=${N}, V=${V}, softcap ${softcap})`,
    gpuTest,
    async () => {
      const dev = await testDevice();
      const logits = randomArray(N * V, N + V, scale);
      const targets = randomTargets(N, V, 3);
      const lT = dev.upload(Float32Array.from(logits), [N, V], { tag: "logits" });
      const tT = dev.upload(targets, [N], { tag: "data" });
      const l32 = Float64Array.from(Float32Array.from(logits));
      const losses = crossEntropyLosses(dev, lT, tT, { softcap });
      const want = crossEntropyLossesRef(l32, targets, N, V, softcap);
      assertAllClose(await dev.readF32(losses), want, { atol: 1e-4, rtol: 1e-5 }, "losses");
      const gradScale = 1 / N;
      const dl = crossEntropyBackward(dev, lT, tT, { gradScale, softcap });
      const dWant = crossEntropyBackwardRef(l32, targets, N, V, gradScale, softcap);
      assertAllClose(await dev.readF32(dl), dWant, { atol: 1e-6, rtol: 1e-4 }, "dlogits");
      // in place: same tensor back, nothing allocated, same values
      const live = dev.allocator.liveBytes;
      const same = crossEntropyBackward(dev, lT, tT, { gradScale, softcap, inPlace: true });
      assert.equal(same, lT);
      assert.equal(dev.allocator.liveBytes, live);
      assertAllClose(await dev.readF32(same), dWant, { atol: 1e-6, rtol: 1e-4 }, "in place");
      for (const t of [lT, tT, losses, dl]) t.dispose();
    },
  );

  Deno.test(
    `fused cross-entropy forward + backward matches the reference (N=${N}, V=${V}, softcap ${softcap})`,
    gpuTest,
    async () => {
      const dev = await testDevice();
      const logits = randomArray(N * V, N + V, scale);
      const targets = randomTargets(N, V, 3);
      const lT = dev.upload(Float32Array.from(logits), [N, V], { tag: "logits" });
      const tT = dev.upload(targets, [N], { tag: "data" });
      const l32 = Float64Array.from(Float32Array.from(logits));
      const gradScale = 0.7 / N;
      const losses = crossEntropyFused(dev, lT, tT, { gradScale, softcap });
      const want = crossEntropyLossesRef(l32, targets, N, V, softcap);
      assertAllClose(await dev.readF32(losses), want, { atol: 1e-4, rtol: 1e-5 }, "losses");
      const dWant = crossEntropyBackwardRef(l32, targets, N, V, gradScale, softcap);
      assertAllClose(await dev.readF32(lT), dWant, { atol: 1e-6, rtol: 1e-4 }, "dlogits in place");
      for (const t of [lT, tT, losses]) t.dispose();
    },
  );
}

Deno.test(
  "cross-entropy (V % 4 = 0): out-of-range target gives NaN loss and gradient",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const lT = dev.upload(Float32Array.from(randomArray(3 * 8, 1)), [3, 8], { tag: "logits" });
    const tT = dev.upload(Int32Array.from([1, 8, -100]), [3], { tag: "data" });
    const lossT = crossEntropyFused(dev, lT, tT, { gradScale: 1 });
    const losses = await dev.readF32(lossT);
    assert.ok(Number.isFinite(losses[0]) && Number.isNaN(losses[1]) && losses[2] === 0);
    const g = await dev.readF32(lT);
    assert.ok(g.slice(8, 16).every(Number.isNaN), "row with a bad target: NaN gradient");
    assert.ok(g.slice(16).every((x) => x === 0), "ignored row: zero gradient");
    for (const t of [lT, tT, lossT]) t.dispose();
  },
);

Deno.test(
  "cross-entropy: out-of-range target gives NaN, shape errors say expected vs got",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const lT = dev.upload(Float32Array.from(randomArray(2 * 5, 1)), [2, 5], { tag: "logits" });
    const tT = dev.upload(Int32Array.from([1, 5]), [2], { tag: "data" });
    const lossT = crossEntropyLosses(dev, lT, tT);
    const losses = await dev.readF32(lossT);
    assert.ok(Number.isFinite(losses[0]) && Number.isNaN(losses[1]));
    const bad = dev.upload(Int32Array.from([1, 2, 3]), [3], { tag: "data" });
    assert.throws(
      () => crossEntropyLosses(dev, lT, bad),
      /targets: expected i32 \[2\], got i32 \[3\]/,
    );
    for (const t of [lT, tT, bad, lossT]) t.dispose();
  },
);

Deno.test("cross-entropy allocates the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  const targets = randomTargets(37, 101, 9);
  await assertSameAllocations(dev, (dv) => {
    const l = dv.zeros([37, 101], { tag: "logits" });
    const t = dv.upload(targets, [37], { tag: "data" });
    const losses = crossEntropyLosses(dv, l, t, { softcap: 30 });
    const dl = crossEntropyBackward(dv, l, t, { gradScale: 1 });
    crossEntropyBackward(dv, l, t, { gradScale: 1, inPlace: true });
    for (const V of [101, 148]) {
      const l2 = dv.zeros([37, V], { tag: "logits" });
      const fused = crossEntropyFused(dv, l2, t, { gradScale: 1 });
      const dl2 = crossEntropyBackward(dv, l2, t, { gradScale: 1 });
      for (const x of [l2, fused, dl2]) x.dispose();
    }
    for (const x of [l, t, losses, dl]) x.dispose();
  });
});
