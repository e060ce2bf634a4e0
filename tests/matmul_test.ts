/** matmul and linear ops: GPU f32 vs f64 references, finite differences, meta-device accounting. */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import type { Tensor } from "../lib/device/tensor.ts";
import type { WebGPUDevice } from "../lib/device/webgpu.ts";
import {
  biasBackward,
  linearBackwardInput,
  linearBackwardWeight,
  linearForward,
} from "../lib/ops/linear.ts";
import { matmul, matmulKernel } from "../lib/ops/matmul.ts";
import { linearBackwardRef, linearForwardRef, matmulRef } from "../lib/reference/matmul.ts";
import { staleKernels } from "../kernels/gen/matmul.ts";
import { assertAllClose, finiteDifferences, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";

/** f32 tolerance for sums of K products of values in [-1, 1). */
function tol(K: number) {
  return { atol: 2e-6 * Math.max(1, Math.sqrt(K)), rtol: 1e-4 };
}

function up(dev: Device, data: Float64Array, shape: number[], name: string): Tensor {
  return dev.upload(Float32Array.from(data), shape, { tag: "data", name });
}

/** Checks matmul (all four transposes, with and without accumulate) on one (M, N, K). */
async function checkMatmul(
  M: number,
  N: number,
  K: number,
  seed: number,
  staging = true,
): Promise<void> {
  const dev = await testDevice();
  const live = dev.allocator.stats().liveByTag.workspace ?? 0;
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const a = randomArray(M * K, seed);
      const b = randomArray(K * N, seed + 1);
      const c0 = randomArray(M * N, seed + 2);
      const ta = up(dev, a, transA ? [K, M] : [M, K], "a");
      const tb = up(dev, b, transB ? [N, K] : [K, N], "b");
      const kernel = matmulKernel(ta, tb, M, N, K, transA, staging);
      const what = `${kernel} M=${M} N=${N} K=${K} transA=${transA} transB=${transB}`;
      const c = matmul(dev, ta, tb, { transA, transB, staging });
      const acc = up(dev, c0, [M, N], "c0");
      matmul(dev, ta, tb, { transA, transB, out: acc, accumulate: true, staging });
      assert.equal(
        dev.allocator.stats().liveByTag.workspace ?? 0,
        live,
        `${what}: workspace freed`,
      );
      assertAllClose(
        await dev.readF32(c),
        matmulRef(a, b, M, N, K, { transA, transB }),
        tol(K),
        what,
      );
      assertAllClose(
        await dev.readF32(acc),
        matmulRef(a, b, M, N, K, { transA, transB, c0 }),
        tol(K),
        `${what} accumulate`,
      );
      for (const t of [ta, tb, c, acc]) t.dispose();
    }
  }
}

Deno.test(
  "matmul, scalar kernel: awkward shapes, all transposes, accumulate",
  gpuTest,
  async () => {
    await checkMatmul(37, 53, 24, 1); // N % 4 ≠ 0
    await checkMatmul(37, 24, 53, 2); // K % 4 ≠ 0
    await checkMatmul(1, 19, 7, 3); // M = 1
    await checkMatmul(9, 5, 1, 4); // K = 1
    await checkMatmul(6, 1, 13, 5); // N = 1
  },
);

Deno.test(
  "matmul, vec4 kernels (texture-staged and storage): tile edges, all transposes, accumulate",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const a = dev.tensor([36, 28], { tag: "data", name: "a" });
    const b = dev.tensor([28, 20], { tag: "data", name: "b" });
    assert.equal(matmulKernel(a, b, 36, 20, 28), "matmul_vec4_tex");
    assert.equal(matmulKernel(a, b, 36, 20, 28, false, false), "matmul_vec4");
    assert.equal(matmulKernel(a, b, 36, 21, 28), "matmul");
    a.dispose();
    b.dispose();
    for (const staging of [true, false]) {
      await checkMatmul(36, 20, 28, 6, staging); // M, N, K multiples of 4, not of 16
      await checkMatmul(68, 136, 8, 7, staging); // several tiles in both directions
      await checkMatmul(4, 4, 4, 8, staging); // one tile, mostly clamped
      await checkMatmul(20, 132, 4, 9, staging); // K = 4: one step; lanes along N (N > 128)
    }
    // Operands over one texture row (4096 floats), with a partial last row.
    await checkMatmul(52, 44, 1100, 10);
  },
);

Deno.test("generated vec4 kernels match kernels/gen/matmul.ts", () => {
  assert.deepEqual(staleKernels(), [], "run: deno run -A kernels/gen/matmul.ts");
});

Deno.test("matmul: overwrite into out, and shape errors", gpuTest, async () => {
  const dev = await testDevice();
  const a = randomArray(5 * 8, 10);
  const b = randomArray(8 * 12, 11);
  const ta = up(dev, a, [5, 8], "a");
  const tb = up(dev, b, [8, 12], "b");
  const out = up(dev, randomArray(60, 12), [5, 12], "out");
  assert.equal(matmul(dev, ta, tb, { out }), out);
  assertAllClose(await dev.readF32(out), matmulRef(a, b, 5, 12, 8), tol(8), "out");
  assert.throws(() => matmul(dev, ta, ta), /inner dimensions differ/);
  const gram = matmul(dev, ta, ta, { transB: true }); // a·aᵀ: one buffer on both sides
  assertAllClose(
    await dev.readF32(gram),
    matmulRef(a, a, 5, 5, 8, { transB: true }),
    tol(8),
    "a·aᵀ",
  );
  gram.dispose();
  const sq = up(dev, randomArray(12 * 8, 13), [12, 8], "sq");
  const sqData = await dev.readF32(sq);
  const gram4 = matmul(dev, sq, sq, { transB: true }); // vec4, texture-staged: one tensor twice
  assertAllClose(
    await dev.readF32(gram4),
    matmulRef(Float64Array.from(sqData), Float64Array.from(sqData), 12, 12, 8, { transB: true }),
    tol(8),
    "sq·sqᵀ",
  );
  for (const t of [sq, gram4]) t.dispose();
  assert.throws(() => matmul(dev, ta, tb, { accumulate: true }), /needs an out tensor/);
  assert.throws(() => matmul(dev, ta, tb, { out: ta }), /must be f32 \[5, 12\]/);
  for (const t of [ta, tb, out]) t.dispose();
});

/** Linear forward, bias, and all three gradients on the GPU against the reference. */
async function checkLinear(N: number, inF: number, outF: number, seed: number): Promise<void> {
  const dev = await testDevice();
  const x = randomArray(N * inF, seed);
  const w = randomArray(outF * inF, seed + 1);
  const bias = randomArray(outF, seed + 2);
  const dy = randomArray(N * outF, seed + 3);
  const dw0 = randomArray(outF * inF, seed + 4);
  const db0 = randomArray(outF, seed + 5);
  const what = `linear N=${N} in=${inF} out=${outF}`;
  {
    const tx = up(dev, x, [N, inF], "x");
    const tw = up(dev, w, [outF, inF], "w");
    const tb = up(dev, bias, [outF], "b");
    const tdy = up(dev, dy, [N, outF], "dy");
    const tdw = up(dev, dw0, [outF, inF], "dw");
    const tdb = up(dev, db0, [outF], "db");
    const y = linearForward(dev, tx, tw, tb);
    const yNoBias = linearForward(dev, tx, tw);
    const dx = linearBackwardInput(dev, tdy, tw);
    linearBackwardWeight(dev, tdy, tx, tdw);
    biasBackward(dev, tdy, tdb);
    const ref = linearBackwardRef(dy, x, w, N, inF, outF);
    const t = tol(Math.max(N, inF, outF));
    assertAllClose(
      await dev.readF32(y),
      linearForwardRef(x, w, bias, N, inF, outF),
      t,
      `${what} y`,
    );
    assertAllClose(
      await dev.readF32(yNoBias),
      linearForwardRef(x, w, undefined, N, inF, outF),
      t,
      `${what} y (no bias)`,
    );
    assertAllClose(await dev.readF32(dx), ref.dx, t, `${what} dx`);
    assertAllClose(await dev.readF32(tdw), ref.dw.map((v, i) => v + dw0[i]), t, `${what} dw +=`);
    assertAllClose(await dev.readF32(tdb), ref.db.map((v, i) => v + db0[i]), t, `${what} db +=`);
    for (const z of [tx, tw, tb, tdy, tdw, tdb, y, yNoBias, dx]) z.dispose();
  }
}

Deno.test("linear: forward with/without bias, dx, dw +=, db += vs reference", gpuTest, async () => {
  await checkLinear(37, 24, 20, 20); // vec4 forward/dx, scalar dw (K = N = 37)
  await checkLinear(36, 12, 28, 21); // vec4 everywhere (transA with M % 4 = 0)
  await checkLinear(5, 7, 3, 22); // scalar everywhere
  const dev = await testDevice();
  const x = dev.tensor([4, 6], { tag: "data" });
  const w = dev.tensor([5, 7], { tag: "data" });
  assert.throws(() => linearForward(dev, x, w), /weight \(out, in = 6/);
  x.dispose();
  w.dispose();
});

Deno.test("linear reference backward matches central finite differences", () => {
  const [N, inF, outF] = [3, 4, 5];
  const x = randomArray(N * inF, 30);
  const w = randomArray(outF * inF, 31);
  const bias = randomArray(outF, 32);
  const g = randomArray(N * outF, 33); // loss = Σ g ⊙ y, so dy = g
  const loss = (xx: Float64Array, ww: Float64Array, bb: Float64Array) =>
    linearForwardRef(xx, ww, bb, N, inF, outF).reduce((s, v, i) => s + v * g[i], 0);
  const ref = linearBackwardRef(g, x, w, N, inF, outF);
  const fd = { atol: 1e-7, rtol: 1e-6 };
  assertAllClose(ref.dx, finiteDifferences((v) => loss(v, w, bias), x), fd, "dx");
  assertAllClose(ref.dw, finiteDifferences((v) => loss(x, v, bias), w), fd, "dw");
  assertAllClose(ref.db, finiteDifferences((v) => loss(x, w, v), bias), fd, "db");
});

/** Runs every op once and returns the allocation figures and dispatch count it caused. */
function runAll(dev: Device): { bytes: number[]; allocations: number; peak: number } {
  const before = dev.allocator.stats();
  dev.allocator.resetPeak();
  const bytes: number[] = [];
  dev.scope(() => {
    const x = dev.tensor([37, 24], { tag: "activations", name: "x" });
    const w = dev.tensor([20, 24], { tag: "weights", name: "w" });
    const b = dev.tensor([20], { tag: "weights", name: "b" });
    const dw = dev.tensor([20, 24], { tag: "grads", name: "dw" });
    const db = dev.tensor([20], { tag: "grads", name: "db" });
    const y = linearForward(dev, x, w, b);
    const dx = linearBackwardInput(dev, y, w);
    linearBackwardWeight(dev, y, x, dw);
    biasBackward(dev, y, db);
    const c = matmul(dev, x, x, { transB: true, tag: "workspace" });
    const g = matmul(dev, w, w, { transB: true }); // texture-staged, one tensor twice
    const s = matmul(dev, w, w, { transA: true, staging: false }); // vec4 storage kernel
    for (const t of [x, w, b, dw, db, y, dx, c, g, s]) bytes.push(t.bytes);
  });
  const after = dev.allocator.stats();
  return {
    bytes,
    allocations: after.allocations - before.allocations,
    peak: after.peakBytes - before.liveBytes,
  };
}

Deno.test("meta device: same allocations and dispatches as WebGPU", gpuTest, async () => {
  const gpu = await testDevice() as WebGPUDevice;
  const meta = new MetaDevice();
  const d0 = gpu.dispatches;
  const onGpu = runAll(gpu);
  const gpuDispatches = gpu.dispatches - d0;
  await gpu.sync();
  const onMeta = runAll(meta);
  assert.deepEqual(onMeta, onGpu);
  assert.equal(meta.dispatches, gpuDispatches);
  assert.equal(meta.allocator.liveBytes, 0);
});
