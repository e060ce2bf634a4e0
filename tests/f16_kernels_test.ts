/**
 * Half-precision kernels: every dtype-generic kernel in its f16 variant (f16 storage, f32
 * accumulation) against the f64 reference on odd shapes, with f16 tolerances. Inputs are rounded
 * to f16 before the reference sees them, so the only error left is the kernels' own: f32
 * accumulation and one f16 rounding of each stored result (|err| ≲ 2⁻¹¹·|value|). Includes real
 * LM-head shapes with K ≥ 2048 (TF.js's SplitK bug gave ~130% errors there), the f32 tensors of
 * the mixed-precision policy (rstd, lse, losses, partial sums), the binding type checks, and
 * meta parity on an f16 device.
 */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import { halfSource } from "../lib/device/kernel_source.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import type { Tensor } from "../lib/device/tensor.ts";
import { add } from "../lib/ops/add.ts";
import { adamwGroupSize, adamwUpdate, adamwUpdateMulti } from "../lib/ops/adamw.ts";
import { attentionBackward, attentionForward } from "../lib/ops/attention.ts";
import { crossEntropyBackward, crossEntropyFused } from "../lib/ops/cross_entropy.ts";
import { embeddingBackward, embeddingForward, embeddingGradIndex } from "../lib/ops/embedding.ts";
import { gluBackward, gluForward, gluProjectForward } from "../lib/ops/glu.ts";
import { matmul, matmulKernel } from "../lib/ops/matmul.ts";
import { sumSquares } from "../lib/ops/reduce.ts";
import { addRmsnormForward, rmsnormBackward, rmsnormForward } from "../lib/ops/rmsnorm.ts";
import { rope } from "../lib/ops/rope.ts";
import { adamwRef } from "../lib/reference/adamw.ts";
import { attentionBackwardRef, attentionForwardRef } from "../lib/reference/attention.ts";
import { crossEntropyBackwardRef, crossEntropyLossesRef } from "../lib/reference/cross_entropy.ts";
import { embeddingBackwardRef, embeddingForwardRef } from "../lib/reference/embedding.ts";
import { gluBackwardRef, gluForwardRef } from "../lib/reference/glu.ts";
import { matmulRef } from "../lib/reference/matmul.ts";
import { sumSquaresRef } from "../lib/reference/reduce.ts";
import { rmsnormBackwardRef, rmsnormForwardRef } from "../lib/reference/rmsnorm.ts";
import { ropeRef } from "../lib/reference/rope.ts";
import { assertAllClose, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDeviceF16 } from "../lib/testing/gpu.ts";
import { requireHalfFeature } from "../lib/device/webgpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

/** Values rounded to f16 (what an f16 tensor holds after an upload). */
function half(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(Float16Array.from(x as ArrayLike<number>));
}

/**
 * f16 tolerance: a few f16 ulps of the value (rtol 2⁻⁸) plus a few ulps of the largest
 * magnitude (catches cancellation in long sums) — far below any wrong-result bug.
 */
function assertHalfClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  let peak = 0;
  for (let i = 0; i < expected.length; i++) peak = Math.max(peak, Math.abs(expected[i]));
  assertAllClose(actual, expected, { atol: peak * 2 ** -9 + 1e-6, rtol: 2 ** -8 }, what);
}

/** An f16 tensor holding `x` rounded to f16 (returned too, as the reference's input). */
function up16(dev: Device, x: Float64Array, shape: number[], name: string) {
  const t = dev.upload(Float32Array.from(x), shape, { tag: "activations", name });
  assert.equal(t.dtype, "f16");
  return { t, x: half(x) };
}

async function read(dev: Device, t: Tensor): Promise<Float32Array> {
  return await dev.readF32(t);
}

Deno.test("f16 variants: enable f16 on the first line, SF = f16; a non-generic kernel refuses", () => {
  const src =
    "// header\nalias SF = f32; // storage float\n@group(0) @binding(0) var<storage> x: array<SF>;";
  const h = halfSource("k", src);
  assert.ok(h.startsWith("enable f16; // header\n"));
  assert.ok(h.includes("alias SF = f16;"));
  assert.equal(h.split("\n").length, src.split("\n").length);
  assert.throws(() => halfSource("plain", "@group(0) @binding(0) var<storage> x: array<f32>;"), {
    message: /kernel "plain" has no f16 variant/,
  });
});

Deno.test("an adapter without shader-f16 is refused with an error naming the feature", () => {
  assert.throws(() => requireHalfFeature(new Set(["timestamp-query"]), "some GPU"), {
    name: "WebGPUUnavailableError",
    message: /adapter feature "shader-f16", which this adapter \(some GPU\) lacks/,
  });
  requireHalfFeature(new Set(["shader-f16"]), "lavapipe");
});

Deno.test("meta f16 device: floats f16 by default, f32 on request, bytes counted as stored", () => {
  const dev = new MetaDevice({ floats: "f16" });
  const a = dev.tensor([3, 5], { tag: "activations" });
  const b = dev.tensor([3, 5], { tag: "optimizer", dtype: "f32" });
  const ids = dev.tensor([7], { tag: "data", dtype: "i32" });
  assert.deepEqual([a.dtype, a.bytes, b.dtype, b.bytes, ids.bytes], ["f16", 30, "f32", 60, 28]);
  // bf16 counting keeps its pure-bf16 meaning: f32 tensors counted as 2 bytes.
  const bf = new MetaDevice({ floats: "bf16" });
  const c = bf.tensor([3, 5], { tag: "optimizer", dtype: "f32" });
  assert.deepEqual([c.dtype, c.bytes], ["f32", 30]);
});

Deno.test(
  "f16 device: write/read round to f16, copies keep f16, odd sizes work",
  gpuTest,
  async () => {
    const dev = await testDeviceF16();
    const x = Float32Array.from([1 / 3, 65504, 1e-8, -2.5, 70000]);
    const t = dev.upload(x, [5], { tag: "activations", name: "x" });
    assert.deepEqual([...await read(dev, t)], [...Float32Array.from(Float16Array.from(x))]);
    const y = dev.tensor([5], { tag: "activations", name: "y" });
    dev.copy(t, 0, y, 0, 5); // odd count ending at the destination's end
    assert.deepEqual([...await read(dev, y)], [...await read(dev, t)]);
    const z = dev.tensor([6], { tag: "activations", name: "z" });
    assert.throws(() => dev.copy(t, 1, z, 0, 2), /f16 copies need even offsets/);
    const f = dev.tensor([5], { tag: "activations", name: "f", dtype: "f32" });
    assert.throws(() => dev.copy(t, 0, f, 0, 4), /a copy does not convert/);
    dev.fill(z, 0.1);
    assert.deepEqual([...await read(dev, z)], Array(6).fill(Float16Array.from([0.1])[0]));
    for (const u of [t, y, z, f]) u.dispose();
  },
);

Deno.test(
  "f16 device: binding dtypes are checked against the kernel's declarations",
  gpuTest,
  async () => {
    const dev = await testDeviceF16();
    const a = dev.zeros([8], { tag: "activations", name: "a16" });
    const b = dev.zeros([8], { tag: "activations", name: "b32", dtype: "f32" });
    assert.throws(() => add(dev, a, b), /"b32" is f32, but "a16" is f16/);
    const x = dev.zeros([4, 8], { tag: "activations", name: "x" });
    const w = dev.zeros([8], { tag: "weights", name: "w" });
    const { y, rstd } = rmsnormForward(dev, x, w, { eps: 1e-5 });
    assert.deepEqual([y.dtype, rstd.dtype], ["f16", "f32"]);
    // rstd must be f32: passing an f16 tensor in its place names the binding.
    const dy = dev.zeros([4, 8], { tag: "activations", name: "dy" });
    const dw = dev.zeros([8], { tag: "grads", name: "dw" });
    const bad = dev.zeros([4], { tag: "activations", name: "rstd16" });
    assert.throws(
      () => rmsnormBackward(dev, dy, x, w, bad, dw),
      /binding 3 \(rstd\) is declared array<f32>, but "rstd16" is f16/,
    );
    await dev.sync();
    for (const t of [a, b, x, w, y, rstd, dy, dw, bad]) t.dispose();
  },
);

// Matmul: scalar kernel (odd shapes), vec4 with textures (rgba16float), vec4 storage; the
// transposes; accumulate; LM-head shapes with K ≥ 2048 on the paths a head uses.
const MATMULS: [number, number, number, boolean, boolean, boolean?][] = [
  [37, 29, 43, false, false],
  [37, 29, 43, true, true],
  [36, 44, 40, false, false],
  [36, 44, 40, true, false],
  [36, 44, 40, false, true, true], // storage-load vec4 kernel
  [33, 260, 2048, false, true], // logits = y · Wᵀ: K = d = 2048
  [33, 64, 4100, false, true], // few output tiles, K > 4096, transposed B (the SplitK case)
  [33, 2048, 516, false, false], // dy = dlogits · W: K = V chunk
  [516, 2048, 33, true, false], // dW = dlogitsᵀ · y: long N
];
for (const [M, N, K, transA, transB, noStage] of MATMULS) {
  Deno.test(
    `f16 matmul matches the reference (M=${M} N=${N} K=${K}${transA ? " Aᵀ" : ""}${
      transB ? " Bᵀ" : ""
    }${noStage ? ", storage loads" : ""})`,
    gpuTest,
    async () => {
      const dev = await testDeviceF16();
      const a = up16(dev, randomArray(M * K, M + K), transA ? [K, M] : [M, K], "a");
      const b = up16(dev, randomArray(K * N, N + K + 1), transB ? [N, K] : [K, N], "b");
      const c0 = up16(dev, randomArray(M * N, 7), [M, N], "c0");
      const kernel = matmulKernel(a.t, b.t, M, N, K, transA, !noStage);
      const c = matmul(dev, a.t, b.t, { transA, transB, staging: !noStage });
      matmul(dev, a.t, b.t, { transA, transB, out: c0.t, accumulate: true, staging: !noStage });
      const want = matmulRef(a.x, b.x, M, N, K, { transA, transB });
      assertHalfClose(await read(dev, c), want, `C (${kernel})`);
      const wantAcc = matmulRef(a.x, b.x, M, N, K, { transA, transB, c0: c0.x });
      assertHalfClose(await read(dev, c0.t), wantAcc, `C += (${kernel})`);
      for (const t of [a.t, b.t, c0.t, c]) t.dispose();
    },
  );
}

for (const [S, d] of [[37, 24], [37, 22], [131, 64]]) {
  Deno.test(
    `f16 rmsnorm, fused add + norm, backward with residual (S=${S}, d=${d})`,
    gpuTest,
    async () => {
      const dev = await testDeviceF16();
      const eps = 1e-5;
      const a = up16(dev, randomArray(S * d, 1, 2), [S, d], "a");
      const b = up16(dev, randomArray(S * d, 2), [S, d], "b");
      const w = up16(dev, randomArray(d, 3), [d], "w");
      const dy = up16(dev, randomArray(S * d, 4), [S, d], "dy");
      const res = up16(dev, randomArray(S * d, 5), [S, d], "res");
      const dw = dev.zeros([d], { tag: "grads", name: "dw" });
      const f = rmsnormForward(dev, a.t, w.t, { eps });
      const ref = rmsnormForwardRef(a.x, w.x, S, d, eps, false);
      assertHalfClose(await read(dev, f.y), ref.y, "y");
      assert.equal(f.rstd.dtype, "f32");
      assertAllClose(await read(dev, f.rstd), ref.rstd, { atol: 1e-6, rtol: 1e-4 }, "rstd (f32)");
      const dx = rmsnormBackward(dev, dy.t, a.t, w.t, f.rstd, dw, { residual: res.t });
      const bref = rmsnormBackwardRef(dy.x, a.x, w.x, S, d, eps, false);
      assertHalfClose(await read(dev, dx), bref.dx.map((v, i) => v + res.x[i]), "dx + residual");
      assertHalfClose(await read(dev, dw), bref.dw, "dw");
      const fused = addRmsnormForward(dev, a.t, b.t, w.t, { eps });
      const h = half(a.x.map((v, i) => v + b.x[i]));
      assertHalfClose(await read(dev, fused.sum), h, "a + b");
      assertHalfClose(await read(dev, fused.y), rmsnormForwardRef(h, w.x, S, d, eps, false).y, "y");
      for (
        const t of [a.t, b.t, w.t, dy.t, res.t, dw, f.y, f.rstd, dx, fused.sum, fused.y, fused.rstd]
      ) {
        t.dispose();
      }
    },
  );
}

// One case (GQA, window, soft-cap): every head dimension compiles its own kernels, slow on lavapipe.
for (const c of [{ S: 37, H: 4, KV: 2, hd: 16, window: 9, softcap: 2 }]) {
  Deno.test(
    `f16 attention forward and backward match the reference (${JSON.stringify(c)})`,
    gpuTest,
    async () => {
      const dev = await testDeviceF16();
      const o = { heads: c.H, kvHeads: c.KV, headDim: c.hd, scale: 1 / Math.sqrt(c.hd), ...c };
      const q = up16(dev, randomArray(c.S * c.H * c.hd, 1, 3), [c.S, c.H * c.hd], "q");
      const k = up16(dev, randomArray(c.S * c.KV * c.hd, 2, 3), [c.S, c.KV * c.hd], "k");
      const v = up16(dev, randomArray(c.S * c.KV * c.hd, 3), [c.S, c.KV * c.hd], "v");
      const dO = up16(dev, randomArray(c.S * c.H * c.hd, 4), [c.S, c.H * c.hd], "dO");
      const f = attentionForward(dev, q.t, k.t, v.t, o);
      const ref = attentionForwardRef(q.x, k.x, v.x, o);
      assertHalfClose(await read(dev, f.out), ref.out, "out");
      assert.equal(f.lse.dtype, "f32");
      assertAllClose(await read(dev, f.lse), ref.lse, { atol: 1e-4, rtol: 1e-4 }, "lse (f32)");
      // The backward sees the stored (f16) output, as training does.
      const g = attentionBackward(dev, dO.t, q.t, k.t, v.t, f.out, f.lse, o);
      const gref = attentionBackwardRef(dO.x, q.x, k.x, v.x, o);
      assertHalfClose(await read(dev, g.dq), gref.dq, "dq");
      assertHalfClose(await read(dev, g.dk), gref.dk, "dk");
      assertHalfClose(await read(dev, g.dv), gref.dv, "dv");
      for (const t of [q.t, k.t, v.t, dO.t, f.out, f.lse, g.dq, g.dk, g.dv]) t.dispose();
    },
  );
}

for (const [N, V, softcap] of [[37, 148, 0], [37, 149, 30], [9, 4096, 0]]) {
  Deno.test(
    `f16 cross-entropy: f32 losses, f16 gradient (N=${N}, V=${V}, softcap ${softcap})`,
    gpuTest,
    async () => {
      const dev = await testDeviceF16();
      const logits = up16(dev, randomArray(N * V, V, 4), [N, V], "logits");
      const tg = Int32Array.from({ length: N }, (_, i) => i % 5 === 3 ? -100 : (i * 7919) % V);
      const targets = dev.upload(tg, [N], { tag: "data", name: "targets" });
      // A loss scale of 2^12 keeps the smallest probabilities (~1/V) out of f16's subnormals.
      const gradScale = 4096 / N;
      const d = crossEntropyBackward(dev, logits.t, targets, { gradScale, softcap });
      const losses = crossEntropyFused(dev, logits.t, targets, { gradScale, softcap });
      assert.equal(losses.dtype, "f32");
      const lref = crossEntropyLossesRef(logits.x, tg, N, V, softcap);
      assertAllClose(await read(dev, losses), lref, { atol: 1e-4, rtol: 1e-4 }, "losses (f32)");
      const gref = crossEntropyBackwardRef(logits.x, tg, N, V, gradScale, softcap);
      assertHalfClose(await read(dev, d), gref, "dlogits");
      assertHalfClose(await read(dev, logits.t), gref, "dlogits in place (fused)");
      for (const t of [logits.t, targets, d, losses]) t.dispose();
    },
  );
}

Deno.test(
  "f16 glu, embedding, rope, add and sum of squares match the reference",
  gpuTest,
  async () => {
    const dev = await testDeviceF16();
    const S = 37, I = 43, d = 22, V = 11;
    const gate = up16(dev, randomArray(S * I, 1, 3), [S, I], "gate");
    const upT = up16(dev, randomArray(S * I, 2), [S, I], "up");
    const dh = up16(dev, randomArray(S * I, 3), [S, I], "dh");
    const h = gluForward(dev, gate.t, upT.t, { activation: "silu" });
    assertHalfClose(await read(dev, h), gluForwardRef(gate.x, upT.x, "silu"), "glu h");
    const gb = gluBackward(dev, dh.t, gate.t, upT.t, { activation: "gelu_tanh" });
    const gbr = gluBackwardRef(dh.x, gate.x, upT.x, "gelu_tanh");
    assertHalfClose(await read(dev, gb.dGate), gbr.dGate, "dGate");
    assertHalfClose(await read(dev, gb.dUp), gbr.dUp, "dUp");

    const ids = Int32Array.from({ length: S }, (_, i) => (i * 5) % V);
    const table = up16(dev, randomArray(V * d, 4), [V, d], "table");
    const idsT = dev.upload(ids, [S], { tag: "data", name: "ids" });
    const e = embeddingForward(dev, idsT, table.t, { scale: 1.5 });
    assertHalfClose(await read(dev, e), embeddingForwardRef(ids, table.x, V, d, 1.5), "embedding");
    const dy = up16(dev, randomArray(S * d, 5), [S, d], "dy");
    const dTable = dev.zeros([V, d], { tag: "grads", name: "dTable" });
    const index = embeddingGradIndex(dev, ids, V);
    embeddingBackward(dev, index, dy.t, dTable, { scale: 1.5 });
    const dref = embeddingBackwardRef(ids, dy.x, new Float64Array(V * d), d, 1.5);
    assertHalfClose(await read(dev, dTable), dref, "dTable");

    const H = 3, hd = 8;
    const x = up16(dev, randomArray(S * H * hd, 6), [S, H * hd], "x");
    const r = rope(dev, x.t, { heads: H, headDim: hd, theta: 10000 });
    assertHalfClose(await read(dev, r), ropeRef(x.x, S, H, hd, 10000), "rope");

    const s = add(dev, gate.t, upT.t);
    assertHalfClose(await read(dev, s), half(gate.x.map((v, i) => v + upT.x[i])), "add");
    const n2 = sumSquares(dev, [gate.t, x.t]);
    assert.equal(n2.dtype, "f32");
    const want = sumSquaresRef([gate.x, x.x]);
    assertAllClose(await read(dev, n2), [want], { rtol: 1e-5, atol: 0 }, "Σx² (f32)");
    for (
      const t of [
        gate.t,
        upT.t,
        dh.t,
        h,
        gb.dGate,
        gb.dUp,
        table.t,
        idsT,
        e,
        dy.t,
        dTable,
        x.t,
        r,
        s,
        n2,
      ]
    ) {
      t.dispose();
    }
    index.dispose();
  },
);

Deno.test(
  "f16 AdamW: f32 master and moments, unscaled f16 gradient, f16 working copy",
  gpuTest,
  async () => {
    const dev = await testDeviceF16();
    const n = 1001;
    const p0 = randomArray(n, 1);
    const g = randomArray(n, 2);
    const scale = 1024;
    const master = dev.upload(Float32Array.from(p0), [n], { tag: "optimizer", dtype: "f32" });
    const grad = up16(dev, g.map((v) => v * scale), [n], "grad"); // gradient of the scaled loss
    const m = dev.zeros([n], { tag: "optimizer", dtype: "f32" });
    const v = dev.zeros([n], { tag: "optimizer", dtype: "f32" });
    const work = dev.tensor([n], { tag: "weights", name: "work" });
    const normSq = sumSquares(dev, [grad.t]);
    const opts = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 1 };
    adamwUpdate(dev, master, grad.t, m, v, {
      ...opts,
      invScale: 1 / scale,
      clip: { normSq, maxNorm: 1 },
      work,
    });
    const p = Float64Array.from(p0);
    const mr = new Float64Array(n);
    const vr = new Float64Array(n);
    const gu = grad.x.map((x) => x / scale);
    adamwRef(p, gu, mr, vr, { ...opts, clip: { normSq: sumSquaresRef([gu]), maxNorm: 1 } });
    assertAllClose(await read(dev, master), p, { atol: 1e-6, rtol: 1e-5 }, "master (f32)");
    assertAllClose(await read(dev, m), mr, { atol: 1e-7, rtol: 1e-4 }, "m (f32)");
    assertHalfClose(await read(dev, work), p, "working copy (f16)");
    for (const t of [master, grad.t, m, v, work, normSq]) t.dispose();
  },
);

Deno.test(
  "f16 multi-tensor AdamW: f32 masters and moments, f16 gradients, f16 working copies",
  gpuTest,
  async () => {
    const dev = await testDeviceF16();
    const scale = 1024;
    const k = adamwGroupSize(dev, { clip: true, work: true });
    assert.ok(k > 1, `lavapipe groups ${k} tensors with working copies`);
    // odd sizes (f32 units) and multiples of 4 (the vec4 variant: vec4<f16> gradients)
    for (const all of [[1, 3, 257, 1000, 255, 513, 2, 64], [4, 12, 1028, 1000, 256, 64, 8, 260]]) {
      const sizes = all.slice(0, k);
      const ts = sizes.map((n, j) => {
        const p0 = randomArray(n, 50 + j);
        const grad = up16(dev, randomArray(n, 70 + j).map((x) => x * scale), [n], "grad");
        return {
          p0,
          gx: grad.x.map((x) => x / scale),
          param: dev.upload(Float32Array.from(p0), [n], { tag: "optimizer", dtype: "f32" }),
          grad: grad.t,
          m: dev.zeros([n], { tag: "optimizer", dtype: "f32" }),
          v: dev.zeros([n], { tag: "optimizer", dtype: "f32" }),
          work: dev.tensor([n], { tag: "weights", name: "work" }),
          weightDecay: j % 2 ? 0 : 0.1,
        };
      });
      const normSq = sumSquares(dev, ts.map((t) => t.grad));
      const opts = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, step: 1 };
      adamwUpdateMulti(dev, ts, { ...opts, invScale: 1 / scale, clip: { normSq, maxNorm: 1 } });
      const clip = { normSq: sumSquaresRef(ts.map((t) => t.gx)), maxNorm: 1 };
      for (const [j, t] of ts.entries()) {
        const p = Float64Array.from(t.p0);
        const mr = new Float64Array(sizes[j]);
        adamwRef(p, t.gx, mr, new Float64Array(sizes[j]), { ...opts, ...t, clip });
        assertAllClose(await read(dev, t.param), p, { atol: 1e-6, rtol: 1e-5 }, `master ${j}`);
        assertAllClose(await read(dev, t.m), mr, { atol: 1e-7, rtol: 1e-4 }, `m ${j}`);
        assertHalfClose(await read(dev, t.work), p, `working copy ${j} (f16)`);
      }
      for (const t of ts) for (const x of [t.param, t.grad, t.m, t.v, t.work]) x.dispose();
      normSq.dispose();
    }
  },
);

Deno.test("f16 ops allocate the same on a meta f16 device as on WebGPU f16", gpuTest, async () => {
  const gpu = await testDeviceF16();
  await assertSameAllocations(gpu, (dev) => {
    const x = dev.zeros([37, 64], { tag: "activations", name: "x" });
    const w = dev.zeros([48, 64], { tag: "weights", name: "w" });
    const y = matmul(dev, x, w, { transB: true }); // staged as rgba16float textures
    const q = dev.zeros([37, 64], { tag: "activations", name: "q" });
    const f = attentionForward(dev, q, x, x, {
      heads: 4,
      kvHeads: 4,
      headDim: 16,
      scale: 0.25,
    });
    const nw = dev.zeros([64], { tag: "weights", name: "nw" });
    const n = rmsnormForward(dev, x, nw, { eps: 1e-5 });
    const g = gluProjectForward(dev, x, w, w, { activation: "silu", keep: true }); // fused
    const gh = gluProjectForward(dev, x, w, w, { activation: "silu", keep: false });
    for (const t of [x, w, y, q, f.out, f.lse, nw, n.y, n.rstd, g.h, g.gate!, g.up!, gh.h]) {
      t.dispose();
    }
  });
});

Deno.test(
  "f16 fused gate/up projection + glu forward matches the reference",
  gpuTest,
  async () => {
    const dev = await testDeviceF16();
    const S = 37, d = 24;
    for (const I of [44, 43]) { // fused epilogue; fallback (I % 4 ≠ 0)
      const x = up16(dev, randomArray(S * d, 61), [S, d], "x");
      const wg = up16(dev, randomArray(I * d, 62, 0.5), [I, d], "wg");
      const wu = up16(dev, randomArray(I * d, 63, 0.5), [I, d], "wu");
      const tr = (w: Float64Array) =>
        Float64Array.from({ length: I * d }, (_, i) => w[(i % I) * d + Math.floor(i / I)]);
      // the kernel rounds gate and up to f16 (as stored) before the GLU
      const gate = half(matmulRef(x.x, tr(wg.x), S, I, d));
      const up = half(matmulRef(x.x, tr(wu.x), S, I, d));
      for (const activation of ["silu", "gelu_tanh"] as const) {
        const r = gluProjectForward(dev, x.t, wg.t, wu.t, { activation, keep: true });
        assertHalfClose(await read(dev, r.gate!), gate, `gate (I=${I})`);
        assertHalfClose(await read(dev, r.up!), up, `up (I=${I})`);
        assertHalfClose(await read(dev, r.h), gluForwardRef(gate, up, activation), `h (I=${I})`);
        const rh = gluProjectForward(dev, x.t, wg.t, wu.t, { activation, keep: false });
        assert.deepEqual(await read(dev, rh.h), await read(dev, r.h), "h without gate/up");
        for (const t of [r.h, r.gate!, r.up!, rh.h]) t.dispose();
      }
      for (const t of [x.t, wg.t, wu.t]) t.dispose();
    }
  },
);
