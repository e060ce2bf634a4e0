/**
 * Two-product matmuls: `matmulSum2` (C = A·B + A2·B2), `matmulPairRowsAccumulate`
 * (C += Aᵀ·B, C2 += A2ᵀ·B) and `matmulPairCols` (C = A·Bᵀ, C2 = A·B2ᵀ): fused and fallback
 * shapes, f32 vs the f64 reference, f16, errors, meta-device accounting.
 */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import type { Tensor } from "../lib/device/tensor.ts";
import { linearBackwardInputPair, linearBackwardWeightPair } from "../lib/ops/linear.ts";
import {
  matmulKernel,
  matmulPairCols,
  matmulPairRowsAccumulate,
  matmulSum2,
} from "../lib/ops/matmul.ts";
import { matmulRef } from "../lib/reference/matmul.ts";
import { assertAllClose, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice, testDeviceF16 } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

const TOL = { atol: 1e-5, rtol: 1e-4 };

function up(dev: Device, data: Float64Array, shape: number[], name: string): Tensor {
  return dev.upload(Float32Array.from(data), shape, { tag: "activations", name });
}

/** xᵀ of a row-major (rows, cols) matrix. */
function transpose(x: Float64Array, rows: number, cols: number): Float64Array {
  return Float64Array.from(
    { length: rows * cols },
    (_, i) => x[(i % rows) * cols + Math.floor(i / rows)],
  );
}

const add = (a: Float64Array, b: Float64Array) => a.map((v, i) => v + b[i]);

// [M, N, K]: texture kernel (all % 4 = 0, edges past the tile), another, fallback (N % 4 ≠ 0)
const SHAPES = [[37, 24, 44], [70, 36, 8], [37, 23, 44]];
// for the row pair (Aᵀ: M % 4 = 0 too): texture kernel (M past the 8-row half tile), another,
// fallback (K % 4 ≠ 0)
const PAIR_SHAPES = [[44, 24, 40], [12, 36, 8], [44, 24, 37]];

for (const [M, N, K] of SHAPES) {
  Deno.test(`matmulSum2 matches the reference (M=${M}, N=${N}, K=${K})`, gpuTest, async () => {
    const dev = await testDevice();
    const [a, b, a2, b2, c0] = [
      randomArray(M * K, 1),
      randomArray(K * N, 2),
      randomArray(M * K, 3),
      randomArray(K * N, 4),
      randomArray(M * N, 5),
    ];
    const T = [
      up(dev, a, [M, K], "a"),
      up(dev, b, [K, N], "b"),
      up(dev, a2, [M, K], "a2"),
      up(dev, b2, [K, N], "b2"),
    ];
    assert.equal(matmulKernel(T[0], T[1], M, N, K) === "matmul_vec4_tex", N % 4 === 0);
    const ref = add(matmulRef(a, b, M, N, K), matmulRef(a2, b2, M, N, K));
    const c = matmulSum2(dev, T[0], T[1], T[2], T[3]);
    assertAllClose(await dev.readF32(c), ref, TOL, "C");
    const acc = up(dev, c0, [M, N], "c");
    matmulSum2(dev, T[0], T[1], T[2], T[3], { out: acc, accumulate: true });
    assertAllClose(await dev.readF32(acc), add(ref, c0), TOL, "C += …");
    // the linear wrapper: dx = dy·w + dy2·w2
    const dx = linearBackwardInputPair(dev, T[0], T[1], T[2], T[3]);
    assertAllClose(await dev.readF32(dx), ref, TOL, "dx");
    for (const t of [...T, c, acc, dx]) t.dispose();
  });
}

for (const [M, N, K] of PAIR_SHAPES) {
  Deno.test(
    `matmulPairRowsAccumulate matches the reference (M=${M}, N=${N}, K=${K})`,
    gpuTest,
    async () => {
      const dev = await testDevice();
      // a, a2 stored (K, M) (dy, dy2 of a linear layer, K rows); b (K, N) (its input x)
      const [a, a2, b, c0, c20] = [
        randomArray(K * M, 6),
        randomArray(K * M, 7),
        randomArray(K * N, 8),
        randomArray(M * N, 9),
        randomArray(M * N, 10),
      ];
      const [aT, a2T, bT] = [
        up(dev, a, [K, M], "a"),
        up(dev, a2, [K, M], "a2"),
        up(dev, b, [K, N], "b"),
      ];
      const [c, c2] = [up(dev, c0, [M, N], "c"), up(dev, c20, [M, N], "c2")];
      assert.equal(matmulKernel(aT, bT, M, N, K, true) === "matmul_vec4_tex", K % 4 === 0);
      matmulPairRowsAccumulate(dev, aT, a2T, bT, c, c2);
      const r1 = add(matmulRef(transpose(a, K, M), b, M, N, K), c0);
      const r2 = add(matmulRef(transpose(a2, K, M), b, M, N, K), c20);
      assertAllClose(await dev.readF32(c), r1, TOL, "C");
      assertAllClose(await dev.readF32(c2), r2, TOL, "C2");
      // the linear wrapper: dw += dyᵀ·x, dw2 += dy2ᵀ·x
      linearBackwardWeightPair(dev, aT, a2T, bT, c, c2);
      const r1b = add(r1, matmulRef(transpose(a, K, M), b, M, N, K));
      assertAllClose(await dev.readF32(c), r1b, TOL, "dw");
      assertAllClose(
        await dev.readF32(c2),
        add(r2, matmulRef(transpose(a2, K, M), b, M, N, K)),
        TOL,
        "dw2",
      );
      for (const t of [aT, a2T, bT, c, c2]) t.dispose();
    },
  );
}

// y = x·wᵀ, y2 = x·w2ᵀ (k and v of one input): texture kernel, another, fallback (N % 4 ≠ 0)
for (const [M, N, K] of [[37, 36, 44], [70, 8, 16], [37, 23, 44]]) {
  Deno.test(`matmulPairCols matches the reference (M=${M}, N=${N}, K=${K})`, gpuTest, async () => {
    const dev = await testDevice();
    const [x, w, w2] = [randomArray(M * K, 21), randomArray(N * K, 22), randomArray(N * K, 23)];
    const xT = up(dev, x, [M, K], "x");
    const wT = up(dev, w, [N, K], "w");
    const w2T = up(dev, w2, [N, K], "w2");
    assert.equal(matmulKernel(xT, wT, M, N, K) === "matmul_vec4_tex", N % 4 === 0);
    const [y, y2] = matmulPairCols(dev, xT, wT, w2T, { names: ["y", "y2"] });
    assert.deepEqual([y.name, y2.name], ["y", "y2"]);
    assertAllClose(await dev.readF32(y), matmulRef(x, transpose(w, N, K), M, N, K), TOL, "y");
    assertAllClose(await dev.readF32(y2), matmulRef(x, transpose(w2, N, K), M, N, K), TOL, "y2");
    for (const t of [xT, wT, w2T, y, y2]) t.dispose();
  });
}

Deno.test("f16 two-product matmuls match the reference", gpuTest, async () => {
  const dev = await testDeviceF16();
  const half = (x: Float64Array) => Float64Array.from(Float16Array.from(x));
  for (const [M, N, K] of [[37, 24, 44], [37, 23, 44]]) {
    const [a, b, a2, b2] = [
      half(randomArray(M * K, 11)),
      half(randomArray(K * N, 12)),
      half(randomArray(M * K, 13)),
      half(randomArray(K * N, 14)),
    ];
    const T = [
      up(dev, a, [M, K], "a"),
      up(dev, b, [K, N], "b"),
      up(dev, a2, [M, K], "a2"),
      up(dev, b2, [K, N], "b2"),
    ];
    assert.equal(T[0].dtype, "f16");
    const ref = add(matmulRef(a, b, M, N, K), matmulRef(a2, b2, M, N, K));
    const tol = { atol: 2 ** -7, rtol: 2 ** -8 };
    const c = matmulSum2(dev, T[0], T[1], T[2], T[3]);
    assertAllClose(await dev.readF32(c), ref, tol, "f16 C");
    for (const t of [...T, c]) t.dispose();
  }
  for (const [M, N, K] of [[44, 24, 40], [44, 24, 37]]) {
    const [a, a2, b] = [
      half(randomArray(K * M, 16)),
      half(randomArray(K * M, 17)),
      half(randomArray(K * N, 18)),
    ];
    const aT = up(dev, a, [K, M], "a");
    const a2T = up(dev, a2, [K, M], "a2");
    const bT = up(dev, b, [K, N], "b");
    const tol = { atol: 2 ** -7, rtol: 2 ** -8 };
    const c1 = dev.zeros([M, N], { tag: "activations", name: "c1" });
    const c2 = dev.zeros([M, N], { tag: "activations", name: "c2" });
    matmulPairRowsAccumulate(dev, aT, a2T, bT, c1, c2);
    const r1 = matmulRef(transpose(a, K, M), b, M, N, K);
    assertAllClose(await dev.readF32(c1), r1, tol, "f16 C1");
    const r2 = matmulRef(transpose(a2, K, M), b, M, N, K);
    assertAllClose(await dev.readF32(c2), r2, tol, "f16 C2");
    for (const t of [aT, a2T, bT, c1, c2]) t.dispose();
  }
  for (const [M, N, K] of [[37, 36, 44], [37, 23, 44]]) {
    const [x, w, w2] = [
      half(randomArray(M * K, 24)),
      half(randomArray(N * K, 25)),
      half(randomArray(N * K, 26)),
    ];
    const xT = up(dev, x, [M, K], "x");
    const wT = up(dev, w, [N, K], "w");
    const w2T = up(dev, w2, [N, K], "w2");
    const tol = { atol: 2 ** -7, rtol: 2 ** -8 };
    const [y, y2] = matmulPairCols(dev, xT, wT, w2T, { names: ["y", "y2"] });
    assertAllClose(await dev.readF32(y), matmulRef(x, transpose(w, N, K), M, N, K), tol, "f16 y");
    const r2 = matmulRef(x, transpose(w2, N, K), M, N, K);
    assertAllClose(await dev.readF32(y2), r2, tol, "f16 y2");
    for (const t of [xT, wT, w2T, y, y2]) t.dispose();
  }
});

Deno.test("two-product matmuls: shape errors name the operands", gpuTest, async () => {
  const dev = await testDevice();
  const a = dev.zeros([8, 12], { tag: "activations", name: "a" });
  const b = dev.zeros([12, 16], { tag: "activations", name: "b" });
  const b2 = dev.zeros([12, 20], { tag: "activations", name: "b2" });
  assert.throws(() => matmulSum2(dev, a, b, a, b2), /both must have the same shapes/);
  assert.throws(
    () => matmulSum2(dev, a, b, a, b, { accumulate: true }),
    /accumulate needs an out tensor/,
  );
  const c = dev.zeros([12, 16], { tag: "activations", name: "c" });
  const cBad = dev.zeros([12, 20], { tag: "activations", name: "cBad" });
  // aᵀ (12, 8)·? needs b with 8 rows
  const x = dev.zeros([8, 16], { tag: "activations", name: "x" });
  assert.throws(
    () => matmulPairRowsAccumulate(dev, a, a, x, c, cBad),
    /out "cBad" must be f32 \[12, 16\], got f32 \[12, 20\]/,
  );
  const w = dev.zeros([16, 12], { tag: "weights", name: "w" });
  const w2 = dev.zeros([20, 12], { tag: "weights", name: "w2" });
  assert.throws(
    () => matmulPairCols(dev, a, w, w2, { names: ["k", "v"] }),
    /"w2" f32 \[20, 12\] must have the dtype and shape of "w" f32 \[16, 12\]/,
  );
  for (const t of [a, b, b2, c, cBad, x, w, w2]) t.dispose();
});

Deno.test("two-product matmuls allocate the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  for (const N of [24, 23]) {
    await assertSameAllocations(dev, (dv) => {
      const a = dv.zeros([40, 44], { tag: "activations" });
      const b = dv.zeros([44, N], { tag: "weights" });
      const c = matmulSum2(dv, a, b, a, b);
      const x = dv.zeros([40, N], { tag: "activations" });
      const w1 = dv.zeros([44, N], { tag: "grads" });
      const w2 = dv.zeros([44, N], { tag: "grads" });
      matmulPairRowsAccumulate(dv, a, a, x, w1, w2);
      const [y, y2] = matmulPairCols(dv, x, w1, w2, { names: ["y", "y2"] });
      for (const t of [a, b, c, x, w1, w2, y, y2]) t.dispose();
    });
  }
});
