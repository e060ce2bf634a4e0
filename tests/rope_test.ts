/** RoPE vs the f64 reference (small and large positions), inverse round-trip, meta parity. */

import assert from "node:assert/strict";
import { rope } from "../lib/ops/rope.ts";
import { ropeRef } from "../lib/reference/rope.ts";
import { assertAllClose, finiteDifferences, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

const S = 37, H = 3, hd = 24, theta = 10000;

Deno.test("rope reference backward (inverse rotation) matches finite differences", () => {
  const S = 4, H = 2, hd = 6;
  const x = randomArray(S * H * hd, 1);
  const g = randomArray(S * H * hd, 2);
  const loss = (xx: Float64Array) =>
    ropeRef(xx, S, H, hd, theta, 3).reduce((a, y, i) => a + y * g[i], 0);
  const back = ropeRef(g, S, H, hd, theta, 3, true);
  assertAllClose(back, finiteDifferences(loss, x), { atol: 1e-8, rtol: 1e-6 });
});

for (const offset of [0, 3990, 100_000, 1_000_000]) {
  Deno.test(
    `rope on webgpu matches the reference (positions ${offset}..${offset + S - 1})`,
    gpuTest,
    async () => {
      const dev = await testDevice();
      const x = randomArray(S * H * hd, 7 + offset);
      const xT = dev.upload(Float32Array.from(x), [S, H * hd], { tag: "activations" });
      const opts = { heads: H, headDim: hd, theta, positionOffset: offset };
      const y = rope(dev, xT, opts);
      const back = rope(dev, y, { ...opts, inverse: true });
      const want = ropeRef(x, S, H, hd, theta, offset);
      assertAllClose(await dev.readF32(y), want, { atol: 2e-5, rtol: 1e-5 }, "rope");
      assertAllClose(await dev.readF32(back), x, { atol: 4e-5, rtol: 1e-5 }, "round trip");
      const wantInv = ropeRef(x, S, H, hd, theta, offset, true);
      const inv = rope(dev, xT, { ...opts, inverse: true });
      assertAllClose(await dev.readF32(inv), wantInv, { atol: 2e-5, rtol: 1e-5 }, "inverse");
      for (const t of [xT, y, back, inv]) t.dispose();
    },
  );
}

Deno.test("rope shape errors say expected vs got", gpuTest, async () => {
  const dev = await testDevice();
  const x = dev.tensor([5, 70], { tag: "activations" });
  assert.throws(
    () => rope(dev, x, { heads: 3, headDim: 24, theta }),
    /expected shape \[S, 72\] \(heads 3 × headDim 24\), got \[5, 70\]/,
  );
  assert.throws(() => rope(dev, x, { heads: 2, headDim: 35, theta }), /even/);
  x.dispose();
});

Deno.test("rope allocates the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  await assertSameAllocations(dev, (dv) => {
    const x = dv.zeros([S, H * hd], { tag: "activations" });
    const y = rope(dv, x, { heads: H, headDim: hd, theta });
    x.dispose();
    y.dispose();
  });
});
