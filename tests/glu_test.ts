/** GLU (SiLU, tanh-GELU) forward/backward vs the f64 reference, overflow guards, meta parity. */

import assert from "node:assert/strict";
import {
  downGluBackward,
  type GLUActivation,
  gluBackward,
  gluForward,
  gluProjectForward,
} from "../lib/ops/glu.ts";
import { matmul, matmulGluForward } from "../lib/ops/matmul.ts";
import { gluBackwardRef, gluForwardRef } from "../lib/reference/glu.ts";
import { matmulRef } from "../lib/reference/matmul.ts";
import { assertAllClose, finiteDifferences, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

const S = 37, I = 53;
const ACTS: GLUActivation[] = ["silu", "gelu_tanh"];

for (const activation of ACTS) {
  Deno.test(`glu reference backward matches finite differences (${activation})`, () => {
    const n = 12;
    const gate = randomArray(n, 1, 4);
    const up = randomArray(n, 2, 2);
    const dh = randomArray(n, 3);
    const loss = (g: Float64Array, u: Float64Array) =>
      gluForwardRef(g, u, activation).reduce((a, h, i) => a + h * dh[i], 0);
    const { dGate, dUp } = gluBackwardRef(dh, gate, up, activation);
    const tol = { atol: 1e-8, rtol: 1e-6 };
    assertAllClose(dGate, finiteDifferences((g) => loss(g, up), gate), tol, "dGate");
    assertAllClose(dUp, finiteDifferences((u) => loss(gate, u), up), tol, "dUp");
  });

  Deno.test(`glu on webgpu matches the reference (${activation})`, gpuTest, async () => {
    const dev = await testDevice();
    const gate = randomArray(S * I, 10, 6);
    // extreme gates: no NaN, saturated values
    gate.set([80, -80, 200, -200, 1e20, -1e20, 0], 0);
    const up = randomArray(S * I, 11, 2);
    const dh = randomArray(S * I, 12);
    const gT = dev.upload(Float32Array.from(gate), [S, I], { tag: "activations" });
    const uT = dev.upload(Float32Array.from(up), [S, I], { tag: "activations" });
    const dhT = dev.upload(Float32Array.from(dh), [S, I], { tag: "activations" });
    const h = gluForward(dev, gT, uT, { activation });
    const { dGate, dUp } = gluBackward(dev, dhT, gT, uT, { activation });
    const g32 = Float64Array.from(Float32Array.from(gate));
    const tol = { atol: 1e-5, rtol: 1e-4 };
    assertAllClose(await dev.readF32(h), gluForwardRef(g32, up, activation), tol, "h");
    const ref = gluBackwardRef(dh, g32, up, activation);
    assertAllClose(await dev.readF32(dGate), ref.dGate, tol, "dGate");
    assertAllClose(await dev.readF32(dUp), ref.dUp, tol, "dUp");
    for (const t of [gT, uT, dhT, h, dGate, dUp]) t.dispose();
  });
}

Deno.test("glu errors: shapes and activation names", gpuTest, async () => {
  const dev = await testDevice();
  const a = dev.tensor([4, 8], { tag: "activations" });
  const b = dev.tensor([4, 9], { tag: "activations" });
  assert.throws(
    () => gluForward(dev, a, b, { activation: "silu" }),
    /up: expected shape \[4, 8\] \(as gate\), got \[4, 9\]/,
  );
  assert.throws(
    () => gluForward(dev, a, a, { activation: "relu" as GLUActivation }),
    /unknown activation "relu"/,
  );
  a.dispose();
  b.dispose();
});

Deno.test("glu allocates the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  await assertSameAllocations(dev, (dv) => {
    const g = dv.zeros([S, I], { tag: "activations" });
    const u = dv.zeros([S, I], { tag: "activations" });
    const h = gluForward(dv, g, u, { activation: "gelu_tanh" });
    const { dGate, dUp } = gluBackward(dv, h, g, u, { activation: "silu" });
    for (const t of [g, u, h, dGate, dUp]) t.dispose();
  });
});

// dh = dy·Wd fused with the GLU backward (matmul epilogue), and its fallback (I % 4 ≠ 0).
for (const activation of ACTS) {
  for (const [S2, d, I2] of [[37, 24, 44], [37, 24, 43], [5, 12, 20]]) {
    Deno.test(
      `down projection + glu backward matches the reference (${activation}, S=${S2}, d=${d}, I=${I2})`,
      gpuTest,
      async () => {
        const dev = await testDevice();
        const dy = randomArray(S2 * d, 31);
        const wd = randomArray(d * I2, 32, 0.5);
        const gate = randomArray(S2 * I2, 33, 4);
        const up = randomArray(S2 * I2, 34, 2);
        const up32 = (x: Float64Array, shape: number[]) =>
          dev.upload(Float32Array.from(x), shape, { tag: "activations" });
        const [dyT, wdT, gT, uT] = [
          up32(dy, [S2, d]),
          up32(wd, [d, I2]),
          up32(gate, [S2, I2]),
          up32(up, [S2, I2]),
        ];
        const { dGate, dUp } = downGluBackward(dev, dyT, wdT, gT, uT, { activation });
        const dh = matmulRef(dy, wd, S2, I2, d);
        const ref = gluBackwardRef(dh, gate, up, activation);
        assertAllClose(await dev.readF32(dGate), ref.dGate, { atol: 1e-5, rtol: 1e-4 }, "dGate");
        assertAllClose(await dev.readF32(dUp), ref.dUp, { atol: 1e-5, rtol: 1e-4 }, "dUp");
        for (const t of [dyT, wdT, gT, uT, dGate, dUp]) t.dispose();
      },
    );
  }
}

Deno.test(
  "down projection + glu backward allocates the same on meta as on webgpu",
  gpuTest,
  async () => {
    const dev = await testDevice();
    for (const I2 of [44, 43]) {
      await assertSameAllocations(dev, (dv) => {
        const dy = dv.zeros([37, 24], { tag: "activations" });
        const wd = dv.zeros([24, I2], { tag: "weights" });
        const g = dv.zeros([37, I2], { tag: "activations" });
        const u = dv.zeros([37, I2], { tag: "activations" });
        const r = downGluBackward(dv, dy, wd, g, u, { activation: "silu" });
        for (const t of [dy, wd, g, u, r.dGate, r.dUp]) t.dispose();
      });
    }
  },
);

// gate = x·Wgᵀ, up = x·Wuᵀ and h = act(gate)·up in one pass (matmul epilogue), with and without
// gate/up stored, and the fallback (I % 4 ≠ 0: two matmuls + gluForward).
const transpose = (w: Float64Array, rows: number, cols: number) =>
  Float64Array.from({ length: rows * cols }, (_, i) => w[(i % rows) * cols + Math.floor(i / rows)]);

for (const activation of ACTS) {
  for (const [S2, d, I2] of [[37, 24, 44], [37, 24, 43], [5, 12, 20], [70, 8, 36]]) {
    for (const keep of [true, false]) {
      Deno.test(
        `gate/up projection + glu forward matches the reference (${activation}, S=${S2}, d=${d}, I=${I2}, keep=${keep})`,
        gpuTest,
        async () => {
          const dev = await testDevice();
          const x = randomArray(S2 * d, 41);
          const wg = randomArray(I2 * d, 42, 0.5);
          const wu = randomArray(I2 * d, 43, 0.5);
          const up32 = (a: Float64Array, shape: number[]) =>
            dev.upload(Float32Array.from(a), shape, { tag: "activations" });
          const [xT, wgT, wuT] = [up32(x, [S2, d]), up32(wg, [I2, d]), up32(wu, [I2, d])];
          const r = gluProjectForward(dev, xT, wgT, wuT, { activation, keep });
          const gate = matmulRef(x, transpose(wg, I2, d), S2, I2, d);
          const up = matmulRef(x, transpose(wu, I2, d), S2, I2, d);
          const tol = { atol: 1e-5, rtol: 1e-4 };
          assertAllClose(await dev.readF32(r.h), gluForwardRef(gate, up, activation), tol, "h");
          assert.equal(r.gate === null, !keep);
          assert.equal(r.up === null, !keep);
          if (r.gate && r.up) {
            assertAllClose(await dev.readF32(r.gate), gate, tol, "gate");
            assertAllClose(await dev.readF32(r.up), up, tol, "up");
          }
          for (const t of [xT, wgT, wuT, r.h, r.gate, r.up]) t?.dispose();
        },
      );
    }
  }
}

Deno.test(
  "the fused gate/up projection equals matmuls + gluForward bit for bit",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const [S2, d, I2] = [37, 24, 44];
    const xT = dev.upload(Float32Array.from(randomArray(S2 * d, 51)), [S2, d], {
      tag: "activations",
    });
    const wgT = dev.upload(Float32Array.from(randomArray(I2 * d, 52)), [I2, d], { tag: "weights" });
    const wuT = dev.upload(Float32Array.from(randomArray(I2 * d, 53)), [I2, d], { tag: "weights" });
    for (const activation of ACTS) {
      const r = gluProjectForward(dev, xT, wgT, wuT, { activation, keep: true });
      const g = matmul(dev, xT, wgT, { transB: true });
      const u = matmul(dev, xT, wuT, { transB: true });
      const h = gluForward(dev, g, u, { activation });
      assert.deepEqual(await dev.readF32(r.gate!), await dev.readF32(g), "gate");
      assert.deepEqual(await dev.readF32(r.up!), await dev.readF32(u), "up");
      assert.deepEqual(await dev.readF32(r.h), await dev.readF32(h), `h (${activation})`);
      for (const t of [r.h, r.gate!, r.up!, g, u, h]) t.dispose();
    }
    for (const t of [xT, wgT, wuT]) t.dispose();
  },
);

Deno.test("gate/up projection errors: shapes, outputs, fallback shapes", gpuTest, async () => {
  const dev = await testDevice();
  const x = dev.zeros([8, 12], { tag: "activations" });
  const wg = dev.zeros([20, 12], { tag: "weights" });
  const wu = dev.zeros([16, 12], { tag: "weights" });
  assert.throws(
    () => gluProjectForward(dev, x, wg, wu, { activation: "silu", keep: true }),
    /up weight: expected shape \[20, 12\] \(as gate\), got \[16, 12\]/,
  );
  const wOdd = dev.zeros([19, 12], { tag: "weights" });
  const h = dev.zeros([8, 19], { tag: "activations" });
  assert.throws(
    () => matmulGluForward(dev, x, wOdd, wOdd, h, null, 0),
    /does not qualify for the texture kernel/,
  );
  const hBad = dev.zeros([8, 16], { tag: "activations" });
  assert.throws(
    () => matmulGluForward(dev, x, wg, wg, hBad, null, 0),
    /output "[^"]*" must be f32 \[8, 20\], got f32 \[8, 16\]/,
  );
  for (const t of [x, wg, wu, wOdd, h, hBad]) t.dispose();
});

Deno.test("gate/up projection allocates the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  for (const I2 of [44, 43]) {
    for (const keep of [true, false]) {
      await assertSameAllocations(dev, (dv) => {
        const x = dv.zeros([37, 24], { tag: "activations" });
        const wg = dv.zeros([I2, 24], { tag: "weights" });
        const wu = dv.zeros([I2, 24], { tag: "weights" });
        const r = gluProjectForward(dv, x, wg, wu, { activation: "gelu_tanh", keep });
        for (const t of [x, wg, wu, r.h, r.gate, r.up]) t?.dispose();
      });
    }
  }
});
