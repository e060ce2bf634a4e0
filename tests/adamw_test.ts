/** AdamW vs the f64 reference over several steps, with and without clipping; meta parity. */

import assert from "node:assert/strict";
import { adamwUpdate } from "../lib/ops/adamw.ts";
import { sumSquares } from "../lib/ops/reduce.ts";
import { adamwRef } from "../lib/reference/adamw.ts";
import { sumSquaresRef } from "../lib/reference/reduce.ts";
import { assertAllClose, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

const n = 1001;
const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

for (const maxNorm of [undefined, 1000, 2]) {
  Deno.test(
    `adamw on webgpu matches the reference over 4 steps (clip ${maxNorm ?? "off"})`,
    gpuTest,
    async () => {
      const dev = await testDevice();
      const p = Float64Array.from(Float32Array.from(randomArray(n, 1)));
      const m = new Float64Array(n);
      const v = new Float64Array(n);
      const pT = dev.upload(Float32Array.from(p), [7, 143], { tag: "weights" });
      const mT = dev.zeros([7, 143], { tag: "optimizer" });
      const vT = dev.zeros([7, 143], { tag: "optimizer" });
      for (let step = 1; step <= 4; step++) {
        const g = Float64Array.from(Float32Array.from(randomArray(n, 10 + step, 0.5)));
        const gT = dev.upload(Float32Array.from(g), [7, 143], { tag: "grads" });
        const normSq = maxNorm === undefined ? undefined : sumSquares(dev, [gT]);
        const clip = normSq ? { normSq, maxNorm: maxNorm! } : undefined;
        adamwUpdate(dev, pT, gT, mT, vT, { ...hp, step, clip });
        const refClip = maxNorm === undefined ? undefined : { normSq: sumSquaresRef([g]), maxNorm };
        adamwRef(p, g, m, v, { ...hp, step, clip: refClip });
        gT.dispose();
        normSq?.dispose();
      }
      const tol = { atol: 1e-6, rtol: 1e-5 };
      assertAllClose(await dev.readF32(pT), p, tol, "param");
      assertAllClose(await dev.readF32(mT), m, tol, "m");
      assertAllClose(await dev.readF32(vT), v, { atol: 1e-9, rtol: 1e-5 }, "v");
      for (const t of [pT, mT, vT]) t.dispose();
    },
  );
}

Deno.test("adamw errors say expected vs got", gpuTest, async () => {
  const dev = await testDevice();
  const p = dev.tensor([4, 5], { tag: "weights", name: "w" });
  const g = dev.tensor([5, 4], { tag: "grads" });
  const m = dev.tensor([4, 5], { tag: "optimizer" });
  const v = dev.tensor([4, 5], { tag: "optimizer" });
  assert.throws(
    () => adamwUpdate(dev, p, g, m, v, { ...hp, step: 1 }),
    /grad \(as param "w"\): expected shape \[4, 5\], got \[5, 4\]/,
  );
  assert.throws(
    () => adamwUpdate(dev, p, m, m, v, { ...hp, step: 0 }),
    /step must be an integer >= 1, got 0/,
  );
  for (const t of [p, g, m, v]) t.dispose();
});

Deno.test("adamw allocates the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  await assertSameAllocations(dev, (dv) => {
    const [p, g, m, v] = ["p", "g", "m", "v"].map((name) =>
      dv.zeros([37, 24], { tag: "weights", name })
    );
    const normSq = sumSquares(dv, [g]);
    adamwUpdate(dv, p, g, m, v, { ...hp, step: 1, clip: { normSq, maxNorm: 1 } });
    adamwUpdate(dv, p, g, m, v, { ...hp, step: 2 });
    for (const t of [p, g, m, v, normSq]) t.dispose();
  });
});
