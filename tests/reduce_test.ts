/**
 * sum and sumSquares vs the f64 reference, determinism, workspace freed, meta parity; the
 * grouped first stage (several tensors per dispatch) gives the same sum for every group size.
 */

import assert from "node:assert/strict";
import { MetaDevice } from "../lib/device/meta.ts";
import { MAX_REDUCE_GROUP, reduceGroupSize, sum, sumSquares } from "../lib/ops/reduce.ts";
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

Deno.test("group sizes follow the device's storage-binding limit", () => {
  assert.equal(reduceGroupSize(new MetaDevice()), MAX_REDUCE_GROUP, "no limit: the cap");
  const of = (n: number) => new MetaDevice({ limits: { maxStorageBuffersPerShaderStage: n } });
  assert.equal(reduceGroupSize(of(32)), 30, "lavapipe: 32 − params − partials");
  assert.equal(reduceGroupSize(of(8)), 6, "WebGPU's default");
  assert.equal(reduceGroupSize(of(2)), 1);
});

Deno.test(
  "grouped sumSquares: bit-identical for every group size, one dispatch per group",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const sizes = [1, 3, 257, 1000, 300_001, 4097, 1, 5000];
    const xs = sizes.map((n, i) => randomArray(n, 40 + i));
    const ts = xs.map((x) => dev.upload(Float32Array.from(x), [x.length], { tag: "grads" }));
    const want = sumSquaresRef(xs.map((x) => Float64Array.from(Float32Array.from(x))));
    const most = reduceGroupSize(dev);
    assert.ok(most >= sizes.length, `lavapipe reads ${most} tensors per dispatch`);
    const got: number[] = [];
    for (const groupSize of [1, 3, most]) {
      const before = dev.dispatches;
      const ss = sumSquares(dev, ts, { groupSize });
      assert.equal(dev.dispatches - before, Math.ceil(sizes.length / groupSize) + 1);
      got.push(await dev.readScalar(ss));
      ss.dispose();
    }
    assertAllClose([got[0]], [want], { atol: 0, rtol: 1e-5 }, "sumSquares");
    assert.deepEqual(got, [got[0], got[0], got[0]], "the grouping does not change the sum");
    // a tensor given twice is read in two dispatches (one buffer may not be bound twice)
    const twice = sumSquares(dev, [ts[2], ts[3], ts[2]]);
    const want2 = sumSquaresRef([xs[2], xs[3], xs[2]].map((x) => Float32Array.from(x)));
    assertAllClose([await dev.readScalar(twice)], [want2], { atol: 0, rtol: 1e-5 }, "twice");
    assert.throws(() => sumSquares(dev, ts, { groupSize: most + 1 }), /groupSize must be/);
    for (const t of [...ts, twice]) t.dispose();
  },
);
