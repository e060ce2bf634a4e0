/** sum and sumSquares vs the f64 reference, determinism, workspace freed, meta parity. */

import assert from "node:assert/strict";
import { sum, sumSquares } from "../lib/ops/reduce.ts";
import { sumRef, sumSquaresRef } from "../lib/reference/reduce.ts";
import { assertAllClose, finiteDifferences, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

const SIZES = [37 * 24, 101, 1, 5000, 300_001];

Deno.test("sumSquares reference gradient matches finite differences", () => {
  const x = randomArray(7, 1);
  const fd = finiteDifferences((xx) => sumSquaresRef([xx]), x);
  assertAllClose(x.map((v) => 2 * v), fd, { atol: 1e-8, rtol: 1e-6 });
  assertAllClose(finiteDifferences(sumRef, x), new Float64Array(7).fill(1), { atol: 1e-8 });
});

Deno.test("sum and sumSquares on webgpu match the reference", gpuTest, async () => {
  const dev = await testDevice();
  const xs = SIZES.map((n, i) => randomArray(n, 20 + i));
  const ts = xs.map((x) => dev.upload(Float32Array.from(x), [x.length], { tag: "grads" }));
  const x32 = xs.map((x) => Float64Array.from(Float32Array.from(x)));
  const live = dev.allocator.liveBytes;
  const ss = sumSquares(dev, ts);
  assert.equal(dev.allocator.liveBytes, live + 4, "only the (1) result stays live");
  const ss2 = sumSquares(dev, ts);
  const s = sum(dev, ts[4]);
  const [a, b] = [await dev.readScalar(ss), await dev.readScalar(ss2)];
  assertAllClose([a], [sumSquaresRef(x32)], { atol: 0, rtol: 1e-5 }, "sumSquares");
  assert.equal(a, b, "deterministic");
  assertAllClose([await dev.readScalar(s)], [sumRef(x32[4])], { atol: 1e-3, rtol: 1e-5 }, "sum");
  for (const t of [...ts, ss, ss2, s]) t.dispose();
});

Deno.test("reduce errors: no tensors, wrong dtype", gpuTest, async () => {
  const dev = await testDevice();
  assert.throws(() => sumSquares(dev, []), /at least one tensor/);
  const i = dev.upload(Int32Array.from([1, 2]), [2], { tag: "data", name: "ids" });
  assert.throws(() => sum(dev, i), /"ids" must be f32 or f16, got i32/);
  i.dispose();
});

Deno.test("reduce allocates the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  await assertSameAllocations(dev, (dv) => {
    const ts = SIZES.map((n) => dv.zeros([n], { tag: "grads" }));
    const ss = sumSquares(dv, ts);
    const s = sum(dv, ts[0]);
    for (const t of [...ts, ss, s]) t.dispose();
  });
});
