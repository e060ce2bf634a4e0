/**
 * NF4 linear kernels (lib/ops/nf4_matmul.ts): forward and input gradient on WebGPU against an
 * f64 product with the reference's dequantised weight, on odd shapes; f16 activations; the
 * device bytes, equal on the meta device.
 */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import {
  nf4DeviceBytes,
  nf4Linear,
  nf4LinearInputGrad,
  nf4StagesInput,
  Nf4Weight,
} from "../lib/ops/nf4_matmul.ts";
import { dequantizeNf4, nf4Bytes, quantizeNf4 } from "../lib/reference/nf4.ts";
import { assertAllClose, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice, testDeviceF16 } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";
import { gaussian } from "../lib/util/random.ts";

/** A random (N, K) weight quantised, and its dequantised f64 values. */
function weight(N: number, K: number, seed: number) {
  const g = gaussian(seed);
  const v = Float32Array.from({ length: N * K }, (_, i) => g() * 0.05 * (1 + (i % 5)));
  const q = quantizeNf4(v, [N, K]);
  return { q, w: dequantizeNf4(q) };
}

/** y (S, N) = x (S, K) · wᵀ in f64. */
function forwardRef(x: ArrayLike<number>, w: Float64Array, S: number, N: number, K: number) {
  const y = new Float64Array(S * N);
  for (let s = 0; s < S; s++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[s * K + k] * w[n * K + k];
      y[s * N + n] = acc;
    }
  }
  return y;
}

/** dx (S, K) = dy (S, N) · w in f64. */
function inputGradRef(dy: ArrayLike<number>, w: Float64Array, S: number, N: number, K: number) {
  const dx = new Float64Array(S * K);
  for (let s = 0; s < S; s++) {
    for (let n = 0; n < N; n++) {
      const g = dy[s * N + n];
      for (let k = 0; k < K; k++) dx[s * K + k] += g * w[n * K + k];
    }
  }
  return dx;
}

function maxAbsErr(a: ArrayLike<number>, e: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - e[i]));
  return m;
}

// (S, N, K): none a multiple of the 8-row or 64-column tiles; K not a multiple of 64, so NF4
// blocks straddle rows; n odd (a padded nibble, a short last block); > 256 blocks (two
// second-level constants). The last two have N and K multiples of 4: the texture kernels
// (`nf4_matmul_tex`, `nf4_matmul_dx_tex`) run them, and the storage kernels with staging off.
const SHAPES: [number, number, number][] = [
  [5, 9, 7],
  [13, 70, 45],
  [37, 150, 130],
  [19, 68, 36],
  [37, 132, 136],
];

for (const [S, N, K] of SHAPES) {
  const paths = K % 4 === 0 && N % 4 === 0 ? [true, false] : [true];
  for (const staging of paths) {
    const kernels = staging && K % 4 === 0 ? "texture kernels" : "storage kernels";
    Deno.test(
      `nf4Linear and nf4LinearInputGrad (S=${S}, N=${N}, K=${K}, ${kernels}) vs f64`,
      gpuTest,
      async () => {
        const dev = await testDevice();
        const { q, w } = weight(N, K, S * 7 + N);
        const x = randomArray(S * K, 1);
        const dy = randomArray(S * N, 2);
        const W = Nf4Weight.upload(dev, q, { name: "w" });
        const tx = dev.upload(Float32Array.from(x), [S, K], { tag: "data", name: "x" });
        const tdy = dev.upload(Float32Array.from(dy), [S, N], { tag: "data", name: "dy" });
        assert.equal(nf4StagesInput(dev, tx, staging), kernels === "texture kernels");
        dev.allocator.startTimeline();
        const y = nf4Linear(dev, tx, W, { staging });
        const dx = nf4LinearInputGrad(dev, tdy, W, { staging });
        const staged = dev.allocator.stopTimeline().filter((e) => e.kind === "alloc")
          .map((e) => e.name).filter((name) => name.endsWith(".texture"));
        assert.deepEqual(
          staged,
          kernels === "texture kernels" ? ["nf4.x.texture", "nf4.dy.texture"] : [],
          "the texture kernels ran where they should",
        );
        // accumulate: add into existing values
        const y0 = randomArray(S * N, 3);
        const dx0 = randomArray(S * K, 4);
        const yAcc = dev.upload(Float32Array.from(y0), [S, N], { tag: "data", name: "y0" });
        const dxAcc = dev.upload(Float32Array.from(dx0), [S, K], { tag: "data", name: "dx0" });
        nf4Linear(dev, tx, W, { out: yAcc, accumulate: true, staging });
        nf4LinearInputGrad(dev, tdy, W, { out: dxAcc, accumulate: true, staging });
        const yRef = forwardRef(x, w, S, N, K);
        const dxRef = inputGradRef(dy, w, S, N, K);
        const tol = { atol: 1e-5, rtol: 1e-5 };
        const yGot = await dev.readF32(y);
        const dxGot = await dev.readF32(dx);
        assertAllClose(yGot, yRef, tol, "y");
        assertAllClose(dxGot, dxRef, tol, "dx");
        assertAllClose(await dev.readF32(yAcc), yRef.map((v, i) => v + y0[i]), tol, "y += …");
        assertAllClose(
          await dev.readF32(dxAcc),
          dxRef.map((v, i) => v + dx0[i]),
          tol,
          "dx += …",
        );
        assert.equal(dev.allocator.stats().liveByTag.workspace ?? 0, 0, "textures freed");
        console.log(
          `NF4 S=${S} N=${N} K=${K} (${kernels}): max |y − ref| ${
            maxAbsErr(yGot, yRef).toExponential(2)
          }, max |dx − ref| ${maxAbsErr(dxGot, dxRef).toExponential(2)}`,
        );
        for (const t of [y, dx, yAcc, dxAcc, tx, tdy]) t.dispose();
        W.dispose();
      },
    );
  }
}

for (const [N, K] of [[70, 45], [68, 44]]) {
  Deno.test(
    `the kernels' dequantised weight is the reference's, to the last bit or one ulp (N=${N}, K=${K})`,
    gpuTest,
    async () => {
      // X = I gives Y = Wᵀ and dY = I gives dX = W: every product is by 1 or 0, every sum exact,
      // so the outputs are the kernels' dequantised values themselves ((68, 44): the texture
      // kernels).
      const dev = await testDevice();
      const { q, w } = weight(N, K, 4);
      const W = Nf4Weight.upload(dev, q, { name: "w" });
      const eye = (n: number) =>
        Float32Array.from({ length: n * n }, (_, i) => i % (n + 1) === 0 ? 1 : 0);
      const ix = dev.upload(eye(K), [K, K], { tag: "data", name: "I_K" });
      const iy = dev.upload(eye(N), [N, N], { tag: "data", name: "I_N" });
      const ty = nf4Linear(dev, ix, W); // (K, N): y[k, n] = W[n, k]
      const tdx = nf4LinearInputGrad(dev, iy, W); // (N, K) = W
      const y = await dev.readF32(ty);
      const dx = await dev.readF32(tdx);
      const wT = new Float64Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wT[k * N + n] = w[n * K + k];
      // The block scale c·m + offset may be one fused multiply-add on a device: ≤ 1 ulp apart.
      const ulp = { atol: 0, rtol: 2 ** -23 };
      assertAllClose(y, wT, ulp, "Y = I·dequant(W)ᵀ");
      assertAllClose(dx, w, ulp, "dX = I·dequant(W)");
      let exact = 0;
      for (let i = 0; i < dx.length; i++) {
        if (dx[i] === w[i] && y[(i % K) * N + Math.floor(i / K)] === w[i]) exact++;
      }
      console.log(
        `dequantised on the device (N=${N}, K=${K}): ${exact} of ${dx.length} weights ` +
          `bit-identical to the reference in both kernels`,
      );
      for (const t of [ix, iy, ty, tdx]) t.dispose();
      W.dispose();
    },
  );
}

for (const [S, N, K] of [[11, 70, 45], [11, 68, 44]]) {
  Deno.test(
    `nf4Linear and nf4LinearInputGrad with f16 activations (S=${S}, N=${N}, K=${K})`,
    gpuTest,
    async () => {
      const dev = await testDeviceF16();
      const { q, w } = weight(N, K, 9);
      const W = Nf4Weight.upload(dev, q, { name: "w" });
      const tx = dev.upload(Float32Array.from(randomArray(S * K, 5)), [S, K], {
        tag: "data",
        name: "x",
      });
      const tdy = dev.upload(Float32Array.from(randomArray(S * N, 6)), [S, N], {
        tag: "data",
        name: "dy",
      });
      assert.equal(tx.dtype, "f16");
      assert.equal(W.quantState.dtype, "f32");
      // The reference takes the f16-rounded inputs; outputs are rounded to f16 once.
      const x = await dev.readF32(tx);
      const dy = await dev.readF32(tdy);
      const y = nf4Linear(dev, tx, W);
      const dx = nf4LinearInputGrad(dev, tdy, W);
      assert.equal(y.dtype, "f16");
      assert.equal(nf4StagesInput(dev, tx), K % 4 === 0, "texture kernels where K, N % 4 = 0");
      const tol = { atol: 1e-4, rtol: 1e-3 }; // f16 keeps 11 significant bits: 4.9e-4 relative
      const yGot = await dev.readF32(y);
      const dxGot = await dev.readF32(dx);
      const yRef = forwardRef(x, w, S, N, K);
      const dxRef = inputGradRef(dy, w, S, N, K);
      assertAllClose(yGot, yRef, tol, "y (f16)");
      assertAllClose(dxGot, dxRef, tol, "dx (f16)");
      console.log(
        `NF4 f16 S=${S} N=${N} K=${K} (${
          K % 4 === 0 ? "texture" : "storage"
        } kernels): max |y − ref| ${maxAbsErr(yGot, yRef).toExponential(2)}, ` +
          `max |dx − ref| ${maxAbsErr(dxGot, dxRef).toExponential(2)}`,
      );
      for (const t of [y, dx, tx, tdy]) t.dispose();
      W.dispose();
    },
  );
}

Deno.test(
  "NF4 weight bytes: the formula, and meta = WebGPU for every allocation",
  gpuTest,
  async () => {
    const gpu = await testDevice();
    const [S, N, K] = [13, 150, 130];
    const { q } = weight(N, K, 1);
    const run = (dev: Device) => {
      const W = Nf4Weight.upload(dev, q, { name: "base.q_proj.weight" });
      const x = dev.upload(Float32Array.from(randomArray(S * K, 1)), [S, K], {
        tag: "activations",
        name: "x",
      });
      const y = nf4Linear(dev, x, W, { name: "y" });
      const dx = nf4LinearInputGrad(dev, y, W, { name: "dx" });
      for (const t of [x, y, dx]) t.dispose();
      W.dispose();
    };
    await assertSameAllocations(gpu, run);
    // and with the texture kernels (workspace textures of X and dY): N, K multiples of 4
    const q4 = weight(132, 136, 2).q;
    await assertSameAllocations(gpu, (dev: Device) => {
      const W = Nf4Weight.upload(dev, q4, { name: "base.down_proj.weight" });
      const x = dev.upload(Float32Array.from(randomArray(S * 136, 1)), [S, 136], {
        tag: "activations",
        name: "x",
      });
      assert.ok(nf4StagesInput(dev, x));
      const y = nf4Linear(dev, x, W, { name: "y" });
      const dx = nf4LinearInputGrad(dev, y, W, { name: "dx" });
      for (const t of [x, y, dx]) t.dispose();
      W.dispose();
    });
    // Bytes: n = 19500 → 2438 words of codes, 305 absmax codes in 77 words, 273 + 2 floats.
    const b = nf4DeviceBytes(N, K);
    assert.deepEqual(b, { codes: 9752, absmax: 308, quantState: 1100, total: 11160 });
    const file = nf4Bytes(N, K);
    assert.equal(file.total, 9750 + 305 + 8 + 4);
    assert.equal(b.total - file.total, (9752 - 9750) + (308 - 305) + 1088, "words + tables");
    for (const dev of [gpu, new MetaDevice(), new MetaDevice({ floats: "bf16" })]) {
      const before = dev.allocator.stats().liveByTag.weights ?? 0;
      const W = Nf4Weight.alloc(dev, N, K, { name: "w" });
      assert.equal(W.bytes, b.total, `${dev.kind} ${dev.floats}`);
      assert.equal((dev.allocator.stats().liveByTag.weights ?? 0) - before, b.total);
      W.dispose();
    }
  },
);

Deno.test(
  "NF4 ops reject bad shapes and a float tensor bound as packed words",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const { q } = weight(9, 7, 2);
    const W = Nf4Weight.upload(dev, q, { name: "w" });
    const x = dev.tensor([4, 8], { tag: "data", name: "x" });
    assert.throws(() => nf4Linear(dev, x, W), /must be a float \(S, 7\) matrix for NF4 weight "w"/);
    assert.throws(() => nf4LinearInputGrad(dev, x, W), /must be a float \(S, 9\) matrix/);
    const x7 = dev.tensor([4, 7], { tag: "data", name: "x7" });
    assert.throws(
      () => nf4Linear(dev, x7, W, { accumulate: true }),
      /accumulate needs an out tensor \(4, 9\)/,
    );
    const f32Codes = dev.tensor([W.codes.size], { tag: "data", name: "f32codes", dtype: "f32" });
    const bad = new Nf4Weight("bad", 9, 7, f32Codes, W.absmax, W.quantState);
    assert.throws(() => nf4Linear(dev, x7, bad), /declared array<u32> \(packed 32-bit words\)/);
    f32Codes.dispose();
    assert.throws(
      () => Nf4Weight.upload(dev, { ...q, packed: q.packed.subarray(1) }, { name: "short" }),
      /expected 32 packed bytes/,
    );
    for (const t of [x, x7]) t.dispose();
    W.dispose();
  },
);

Deno.test(
  "NF4 bytes per parameter: live and reserved, meta = WebGPU; Llama 3.3 70B's matrices on meta",
  gpuTest,
  async () => {
    const gpu = await testDevice();
    // a weight of 4M parameters, uploaded on WebGPU, allocated on meta (f32 and bf16 counting)
    const [N, K] = [1024, 4096];
    const { q } = weight(N, K, 3);
    const held = (dev: Device) => {
      dev.allocator.releaseCached(); // no cached buffer to reuse: the reserved bytes are new
      const a = dev.allocator.stats();
      const W = dev.kind === "meta"
        ? Nf4Weight.alloc(dev, N, K, { name: "w" })
        : Nf4Weight.upload(dev, q, { name: "w" });
      const b = dev.allocator.stats();
      const r = {
        live: b.liveBytes - a.liveBytes,
        storage: b.reservedByKind.storage - a.reservedByKind.storage,
      };
      W.dispose();
      return r;
    };
    const onGpu = held(gpu);
    const want = nf4DeviceBytes(N, K).total;
    assert.equal(onGpu.live, want, "WebGPU live bytes = nf4DeviceBytes");
    for (const meta of [new MetaDevice(), new MetaDevice({ floats: "bf16" })]) {
      assert.deepEqual(held(meta), onGpu, `meta (${meta.floats}) = WebGPU, live and reserved`);
    }
    const n = N * K;
    const file = nf4Bytes(N, K);
    console.log(
      `NF4 ${N}×${K}: ${want} live bytes on WebGPU and meta = ${(8 * want / n).toFixed(6)} ` +
        `bits/param (file ${
          file.bitsPerParameter.toFixed(6)
        }); reserved storage ${onGpu.storage} ` +
        `= ${(8 * onGpu.storage / n).toFixed(6)} bits/param`,
    );
    // Llama 3.3 70B's matrices (gate/up, q/o, k/v) on the meta device: 4.127 bits + the tables
    const meta = new MetaDevice({ floats: "bf16" });
    for (const [r, c] of [[28672, 8192], [8192, 8192], [1024, 8192]]) {
      const W = Nf4Weight.alloc(meta, r, c, { name: "w" });
      const bits = 8 * W.bytes / (r * c);
      assert.equal(W.bytes, nf4DeviceBytes(r, c).total);
      assert.ok(bits > 4.126953 && bits < 4.1285, `${r}×${c}: ${bits} bits/param`);
      console.log(`NF4 ${r}×${c} on meta: ${W.bytes} bytes = ${bits.toFixed(6)} bits/param`);
      W.dispose();
    }
  },
);
