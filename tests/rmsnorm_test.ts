/** RMSNorm forward/backward vs the f64 reference (with and without unit offset), meta parity. */

import assert from "node:assert/strict";
import { addRmsnormForward, rmsnormBackward, rmsnormForward } from "../lib/ops/rmsnorm.ts";
import { rmsnormBackwardRef, rmsnormForwardRef } from "../lib/reference/rmsnorm.ts";
import { assertAllClose, finiteDifferences, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

const eps = 1e-5;

for (const unitOffset of [false, true]) {
  Deno.test(`rmsnorm reference backward matches finite differences (unitOffset ${unitOffset})`, () => {
    const S = 3, d = 5;
    const x = randomArray(S * d, 1);
    const w = randomArray(d, 2);
    const g = randomArray(S * d, 3);
    const loss = (xx: Float64Array, ww: Float64Array) =>
      rmsnormForwardRef(xx, ww, S, d, eps, unitOffset).y.reduce((a, y, i) => a + y * g[i], 0);
    const { dx, dw } = rmsnormBackwardRef(g, x, w, S, d, eps, unitOffset);
    assertAllClose(dx, finiteDifferences((xx) => loss(xx, w), x), { atol: 1e-7, rtol: 1e-6 }, "dx");
    assertAllClose(dw, finiteDifferences((ww) => loss(x, ww), w), { atol: 1e-7, rtol: 1e-6 }, "dw");
  });

  for (const [S, d] of [[37, 24], [5, 150], [131, 64]]) {
    Deno.test(
      `rmsnorm on webgpu matches the reference (S=${S}, d=${d}, unitOffset ${unitOffset})`,
      gpuTest,
      async () => {
        const dev = await testDevice();
        const x = randomArray(S * d, 10 + d, 2);
        const w = randomArray(d, 11);
        const dy = randomArray(S * d, 12);
        const dw0 = randomArray(d, 13);
        const xT = dev.upload(Float32Array.from(x), [S, d], { tag: "activations" });
        const wT = dev.upload(Float32Array.from(w), [d], { tag: "weights" });
        const dyT = dev.upload(Float32Array.from(dy), [S, d], { tag: "activations" });
        const dwT = dev.upload(Float32Array.from(dw0), [d], { tag: "grads" });
        const { y, rstd } = rmsnormForward(dev, xT, wT, { eps, unitOffset });
        const dx = rmsnormBackward(dev, dyT, xT, wT, rstd, dwT, { unitOffset });
        const ref = rmsnormForwardRef(x, w, S, d, eps, unitOffset);
        const bref = rmsnormBackwardRef(dy, x, w, S, d, eps, unitOffset);
        assertAllClose(await dev.readF32(y), ref.y, { atol: 1e-5, rtol: 1e-4 }, "y");
        assertAllClose(await dev.readF32(rstd), ref.rstd, { atol: 1e-6, rtol: 1e-5 }, "rstd");
        assertAllClose(await dev.readF32(dx), bref.dx, { atol: 1e-5, rtol: 1e-4 }, "dx");
        const dwWant = dw0.map((v, i) => v + bref.dw[i]);
        assertAllClose(await dev.readF32(dwT), dwWant, { atol: 1e-4, rtol: 1e-4 }, "dw");
        for (const t of [xT, wT, dyT, dwT, y, rstd, dx]) t.dispose();
      },
    );
  }
}

// Fused ops: residual add + norm forward; backward with a residual gradient (dx + res, dw).
for (const [S, d] of [[37, 24], [131, 64], [5, 150], [37, 22]]) {
  Deno.test(
    `fused residual add + rmsnorm and backward with residual match the reference (S=${S}, d=${d})`,
    gpuTest,
    async () => {
      const dev = await testDevice();
      const a = randomArray(S * d, 20 + d, 2);
      const b = randomArray(S * d, 21 + d, 2);
      const w = randomArray(d, 22);
      const dy = randomArray(S * d, 23);
      const res = randomArray(S * d, 24);
      const dw0 = randomArray(d, 25);
      const up = (x: Float64Array, shape: number[]) =>
        dev.upload(Float32Array.from(x), shape, { tag: "activations" });
      const [aT, bT, wT, dyT, resT, dwT] = [
        up(a, [S, d]),
        up(b, [S, d]),
        up(w, [d]),
        up(dy, [S, d]),
        up(res, [S, d]),
        up(dw0, [d]),
      ];
      const { sum, y, rstd } = addRmsnormForward(dev, aT, bT, wT, { eps, sumName: "h" });
      assert.equal(sum.name, "h");
      const h = a.map((v, i) => Math.fround(Math.fround(v) + Math.fround(b[i])));
      const ref = rmsnormForwardRef(h, w, S, d, eps, false);
      assertAllClose(await dev.readF32(sum), h, { atol: 1e-6, rtol: 1e-6 }, "sum");
      assertAllClose(await dev.readF32(y), ref.y, { atol: 1e-5, rtol: 1e-4 }, "y");
      assertAllClose(await dev.readF32(rstd), ref.rstd, { atol: 1e-6, rtol: 1e-5 }, "rstd");
      const dx = rmsnormBackward(dev, dyT, sum, wT, rstd, dwT, { residual: resT });
      const bref = rmsnormBackwardRef(dy, h, w, S, d, eps, false);
      const dxWant = bref.dx.map((v, i) => v + res[i]);
      assertAllClose(await dev.readF32(dx), dxWant, { atol: 1e-5, rtol: 1e-4 }, "dx + residual");
      const dwWant = dw0.map((v, i) => v + bref.dw[i]);
      assertAllClose(await dev.readF32(dwT), dwWant, { atol: 1e-4, rtol: 1e-4 }, "dw");
      for (const t of [aT, bT, wT, dyT, resT, dwT, sum, y, rstd, dx]) t.dispose();
    },
  );
}

Deno.test("fused rmsnorm ops allocate the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  for (const d of [24, 22]) {
    await assertSameAllocations(dev, (dv) => {
      const a = dv.zeros([37, d], { tag: "activations" });
      const b = dv.zeros([37, d], { tag: "activations" });
      const w = dv.zeros([d], { tag: "weights" });
      const dw = dv.zeros([d], { tag: "grads" });
      const { sum, y, rstd } = addRmsnormForward(dv, a, b, w, { eps });
      const dx = rmsnormBackward(dv, y, sum, w, rstd, dw, { residual: a });
      for (const t of [a, b, w, dw, sum, y, rstd, dx]) t.dispose();
    });
  }
});

Deno.test("rmsnorm shape errors say expected vs got", gpuTest, async () => {
  const dev = await testDevice();
  const x = dev.tensor([4, 8], { tag: "activations" });
  const w = dev.tensor([7], { tag: "weights" });
  assert.throws(() => rmsnormForward(dev, x, w, { eps }), /w: expected shape \[8\], got \[7\]/);
  x.dispose();
  w.dispose();
});

Deno.test("rmsnorm allocates the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  await assertSameAllocations(dev, (dv) => {
    const x = dv.zeros([37, 24], { tag: "activations" });
    const w = dv.zeros([24], { tag: "weights" });
    const dw = dv.zeros([24], { tag: "grads" });
    const { y, rstd } = rmsnormForward(dv, x, w, { eps });
    const dx = rmsnormBackward(dv, y, x, w, rstd, dw);
    for (const t of [x, w, dw, y, rstd, dx]) t.dispose();
  });
});

Deno.test("rmsnorm with more rows than one grid dimension holds (grid1d)", gpuTest, async () => {
  const dev = await testDevice();
  const S = 65537, d = 3;
  const x = randomArray(S * d, 5);
  const xT = dev.upload(Float32Array.from(x), [S, d], { tag: "activations" });
  const w = dev.upload([0.5, 1, 2], [d], { tag: "weights" });
  const { y, rstd } = rmsnormForward(dev, xT, w, { eps });
  const ref = rmsnormForwardRef(x, Float64Array.from([0.5, 1, 2]), S, d, eps);
  assertAllClose(await dev.readF32(rstd), ref.rstd, { atol: 1e-5, rtol: 1e-5 }, "rstd");
  assertAllClose(await dev.readF32(y), ref.y, { atol: 1e-5, rtol: 1e-4 }, "y");
  for (const t of [xT, w, y, rstd]) t.dispose();
});
