/**
 * The LoRA layer (lib/nn/lora.ts): forward and backward on WebGPU against the f64 reference
 * autograd (lib/reference/lora.ts) and central finite differences, on odd shapes, with f32, f16
 * and NF4 bases; PEFT's initialisation; meta = WebGPU allocations; AdamW steps of a lone layer
 * against an f64 reference.
 */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import { createLoraParameters, loraInitA, LoraLinear, loraScaling } from "../lib/nn/lora.ts";
import { Parameter } from "../lib/nn/parameter.ts";
import { Nf4Weight } from "../lib/ops/nf4_matmul.ts";
import { adamwRef } from "../lib/reference/adamw.ts";
import { backward, mul, sumAll } from "../lib/reference/autograd.ts";
import { loraRef, loraRefForward, type LoraRefInputs } from "../lib/reference/lora.ts";
import { dequantizeNf4, type Nf4Quantized, quantizeNf4 } from "../lib/reference/nf4.ts";
import { AdamW, type AdamWOptions } from "../lib/optim/adamw.ts";
import { assertAllClose, finiteDifferences, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice, testDeviceF16 } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";
import { leaf } from "../lib/reference/autograd.ts";

interface Case {
  S: number;
  N: number;
  K: number;
  r: number;
  bias?: boolean;
  base: "f32" | "nf4";
  rslora?: boolean;
}

/** Random inputs of a case (B non-zero so dA is not trivially zero), f32-representable. */
function inputs(c: Case, seed: number): LoraRefInputs & { R: Float64Array; q?: Nf4Quantized } {
  const f = (a: Float64Array) => Float64Array.from(Float32Array.from(a));
  let w: Float64Array = f(randomArray(c.N * c.K, seed + 1, 0.3));
  let q: Nf4Quantized | undefined;
  if (c.base === "nf4") {
    q = quantizeNf4(Float32Array.from(w), [c.N, c.K]);
    w = dequantizeNf4(q); // the reference's base is the dequantised weight
  }
  return {
    q,
    S: c.S,
    N: c.N,
    K: c.K,
    r: c.r,
    x: f(randomArray(c.S * c.K, seed + 2)),
    w,
    a: f(randomArray(c.r * c.K, seed + 3, 0.3)),
    b: f(randomArray(c.N * c.r, seed + 4, 0.3)),
    bias: c.bias ? f(randomArray(c.N, seed + 5, 0.5)) : undefined,
    scaling: loraScaling(c.r, 16, c.rslora),
    R: f(randomArray(c.S * c.N, seed + 6)),
  };
}

/** The layer on `dev` holding the case's weights (the NF4 base quantised from the f32 one). */
function build(dev: Device, c: Case, p: LoraRefInputs & { q?: Nf4Quantized }, seed: number) {
  const name = "model.layers.0.self_attn.q_proj";
  const f32 = (a?: ArrayLike<number>) => (a && dev.kind !== "meta" ? Float32Array.from(a) : a);
  const upload = (n: string, a: ArrayLike<number> | undefined, shape: number[]) =>
    dev.kind === "meta"
      ? dev.tensor(shape, { tag: "weights", name: n })
      : dev.upload(Float32Array.from(a!), shape, { tag: "weights", name: n });
  let base: Parameter | Nf4Weight;
  if (c.base === "nf4") {
    base = dev.kind === "meta"
      ? Nf4Weight.alloc(dev, c.N, c.K, { name: `${name}.weight` })
      : Nf4Weight.upload(dev, p.q!, { name: `${name}.weight` });
  } else base = new Parameter(`${name}.weight`, upload(`${name}.weight`, p.w, [c.N, c.K]));
  const bias = p.bias
    ? new Parameter(`${name}.bias`, upload(`${name}.bias`, p.bias, [c.N]))
    : undefined;
  const { a, b } = createLoraParameters(dev, name, { r: c.r, N: c.N, K: c.K }, {
    seed,
    a: f32(p.a) as Float32Array | undefined,
    b: f32(p.b) as Float32Array | undefined,
  });
  return new LoraLinear(dev, name, base, a, b, p.scaling, bias);
}

/** Runs forward + backward with dy = R; returns host copies and frees everything. */
async function run(
  dev: Device,
  c: Case,
  p: LoraRefInputs & { R: Float64Array; q?: Nf4Quantized },
  seed: number,
) {
  const layer = build(dev, c, p, seed);
  const x = dev.upload(Float32Array.from(p.x), [c.S, c.K], { tag: "data", name: "x" });
  const dy = dev.upload(Float32Array.from(p.R), [c.S, c.N], { tag: "data", name: "dy" });
  const { out, saved } = layer.forward(x);
  const dx = layer.backward(dy, saved);
  const got = {
    y: await dev.readF32(out),
    dx: await dev.readF32(dx),
    dA: await dev.readF32(layer.a.grad!),
    dB: await dev.readF32(layer.b.grad!),
    baseGrad: layer.base instanceof Parameter ? layer.base.grad : null,
    biasGrad: layer.bias?.grad ?? null,
  };
  for (const t of [out, dx, x, dy]) t.dispose();
  for (const q of [layer.a, layer.b, layer.bias]) q?.dispose();
  if (layer.base instanceof Parameter) layer.base.dispose();
  else layer.base.dispose();
  return got;
}

function reference(p: LoraRefInputs & { R: Float64Array }) {
  const ref = loraRef(p);
  backward(sumAll(mul(ref.y, leaf(p.S, p.N, p.R))));
  return { y: ref.y.data, dx: ref.x.grad!, dA: ref.a.grad!, dB: ref.b.grad! };
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const CASES: Case[] = [
  { S: 5, N: 9, K: 7, r: 3, base: "f32" },
  { S: 13, N: 70, K: 45, r: 4, base: "f32", bias: true, rslora: true },
  { S: 19, N: 68, K: 36, r: 8, base: "f32" },
  { S: 13, N: 70, K: 45, r: 5, base: "nf4", bias: true },
  { S: 19, N: 68, K: 36, r: 8, base: "nf4" },
];

for (const [i, c] of CASES.entries()) {
  const label = `S=${c.S} N=${c.N} K=${c.K} r=${c.r}, ${c.base} base${c.bias ? " + bias" : ""}${
    c.rslora ? ", rsLoRA" : ""
  }`;
  Deno.test(
    `LoraLinear forward/backward vs the f64 reference autograd (${label})`,
    gpuTest,
    async () => {
      const dev = await testDevice();
      const p = inputs(c, 100 * i);
      const got = await run(dev, c, p, i);
      const want = reference(p);
      const tol = { atol: 1e-5, rtol: 1e-5 };
      assertAllClose(got.y, want.y, tol, "y");
      assertAllClose(got.dx, want.dx, tol, "dx");
      assertAllClose(got.dA, want.dA, tol, "dA");
      assertAllClose(got.dB, want.dB, tol, "dB");
      assert.equal(got.baseGrad, null, "the frozen base has no gradient");
      assert.equal(got.biasGrad, null, "the frozen bias has no gradient");
      console.log(
        `LoRA ${label}: max |err| y ${maxAbs(got.y, want.y).toExponential(2)}, dx ${
          maxAbs(got.dx, want.dx).toExponential(2)
        }, dA ${maxAbs(got.dA, want.dA).toExponential(2)}, dB ${
          maxAbs(got.dB, want.dB).toExponential(2)
        }`,
      );
    },
  );
}

Deno.test(
  "LoraLinear gradients vs central finite differences of the f64 forward",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const c: Case = { S: 6, N: 11, K: 9, r: 3, base: "f32", bias: true };
    const p = inputs(c, 7);
    const got = await run(dev, c, p, 7);
    const loss = (q: LoraRefInputs) => loraRefForward(q).reduce((s, y, j) => s + y * p.R[j], 0);
    const fd = {
      dx: finiteDifferences((v) => loss({ ...p, x: v }), Float64Array.from(p.x)),
      dA: finiteDifferences((v) => loss({ ...p, a: v }), Float64Array.from(p.a)),
      dB: finiteDifferences((v) => loss({ ...p, b: v }), Float64Array.from(p.b)),
    };
    const tol = { atol: 2e-5, rtol: 1e-4 };
    assertAllClose(got.dx, fd.dx, tol, "dx vs finite differences");
    assertAllClose(got.dA, fd.dA, tol, "dA vs finite differences");
    assertAllClose(got.dB, fd.dB, tol, "dB vs finite differences");
    console.log(
      `LoRA vs finite differences: max |err| dx ${maxAbs(got.dx, fd.dx).toExponential(2)}, dA ${
        maxAbs(got.dA, fd.dA).toExponential(2)
      }, dB ${maxAbs(got.dB, fd.dB).toExponential(2)}`,
    );
  },
);

Deno.test("LoraLinear with f16 activations and weights (f32 masters)", gpuTest, async (t) => {
  let dev: Device;
  try {
    dev = await testDeviceF16();
  } catch (e) {
    await t.step({ name: `skipped: ${(e as Error).message}`, ignore: true, fn: () => {} });
    return;
  }
  for (const [i, c] of [CASES[2], CASES[4]].entries()) {
    const p = inputs(c, 300 + i);
    // the reference takes the f16-rounded inputs (the NF4 base's dequantisation is f32)
    const h = (a: ArrayLike<number>) => Float64Array.from(new Float16Array(Array.from(a)));
    const q = {
      ...p,
      x: h(p.x),
      a: h(p.a),
      b: h(p.b),
      R: h(p.R),
      w: c.base === "f32" ? h(p.w) : p.w,
    };
    const got = await run(dev, c, q, i);
    const want = reference(q);
    const tol = { atol: 2e-3, rtol: 2e-3 };
    for (const k of ["y", "dx", "dA", "dB"] as const) assertAllClose(got[k], want[k], tol, k);
    console.log(
      `LoRA f16 (${c.base} base): max |err| y ${maxAbs(got.y, want.y).toExponential(2)}, dx ${
        maxAbs(got.dx, want.dx).toExponential(2)
      }, dA ${maxAbs(got.dA, want.dA).toExponential(2)}, dB ${
        maxAbs(got.dB, want.dB).toExponential(2)
      }`,
    );
  }
});

Deno.test(
  "LoraLinear allocates the same on the meta device as on WebGPU (f32, NF4, f16)",
  gpuTest,
  async () => {
    const devices: Device[] = [await testDevice()];
    try {
      devices.push(await testDeviceF16());
    } catch {
      // no shader-f16: the f32 device alone
    }
    for (const gpu of devices) {
      for (const c of [CASES[1], CASES[3]]) {
        const p = inputs(c, 11);
        await assertSameAllocations(gpu, async (dev) => {
          const layer = build(dev, c, p, 1);
          const x = dev.tensor([c.S, c.K], { tag: "data", name: "x" });
          const dy = dev.tensor([c.S, c.N], { tag: "data", name: "dy" });
          const { out, saved } = layer.forward(x);
          const dx = layer.backward(dy, saved);
          const again = layer.recompute(x);
          layer.backward(dy, again).dispose();
          layer.forwardOut(x).dispose();
          new AdamW(dev).stepAll(layer.parameters);
          for (const t of [out, dx, x, dy]) t.dispose();
          for (const q of [layer.a, layer.b, layer.bias]) q?.dispose();
          layer.base.dispose();
          await Promise.resolve();
        });
      }
    }
  },
);

Deno.test("LoraLinear saves a view of x and u (S, r); the base gets no optimizer state", () => {
  const dev = new MetaDevice();
  const c: Case = { S: 64, N: 48, K: 32, r: 4, base: "nf4" };
  const layer = build(dev, c, inputs(c, 1), 1);
  const x = dev.tensor([c.S, c.K], { tag: "activations", name: "x" });
  const before = dev.allocator.stats().liveByTag.activations ?? 0;
  const { out, saved } = layer.forward(x);
  const after = dev.allocator.stats().liveByTag.activations ?? 0;
  // out (S, N) + u (S, r), 4 bytes each; x is a view (no new bytes)
  assert.equal(after - before, 4 * (c.S * c.N + c.S * c.r));
  assert.deepEqual(saved.u.shape, [c.S, c.r]);
  assert.equal(saved.u.tag, "activations");
  const dy = dev.tensor([c.S, c.N], { tag: "activations", name: "dy" });
  layer.backward(dy, saved).dispose();
  new AdamW(dev).stepAll(layer.parameters);
  const opt = dev.allocator.stats().liveByTag.optimizer ?? 0;
  assert.equal(opt, 2 * 4 * (c.r * c.K + c.N * c.r), "moments of A and B only");
  assert.equal(dev.allocator.stats().liveByTag.grads ?? 0, 0, "gradients freed by the step");
  out.dispose();
});

Deno.test(
  "PEFT's initialisation: A Kaiming-uniform (a = √5), B zeros, output = the base",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const [N, K, r, S] = [10, 37, 6, 3];
    const w = Float32Array.from(randomArray(N * K, 5, 0.2));
    const base = new Parameter("w", dev.upload(w, [N, K], { tag: "weights", name: "w" }));
    const layer = LoraLinear.create(dev, "m", base, { r, alpha: 16, seed: 3 });
    assert.equal(layer.scaling, 16 / 6);
    assert.equal(
      LoraLinear.create(dev, "m2", base, { r: 4, alpha: 16, rslora: true, seed: 3 }).scaling,
      8,
    );
    const a = await dev.readF32(layer.a.value);
    const bound = 1 / Math.sqrt(K);
    assert.ok(a.every((v) => Math.abs(v) <= bound), "A within ±1/√K");
    assert.ok(Math.max(...a.map(Math.abs)) > 0.9 * bound, "A fills its range");
    assert.deepEqual(a, loraInitA(r, K, 3));
    assert.ok((await dev.readF32(layer.b.value)).every((v) => v === 0), "B zeros");
    const x = Float32Array.from(randomArray(S * K, 9));
    const tx = dev.upload(x, [S, K], { tag: "data", name: "x" });
    const y = layer.forwardOut(tx);
    const want = new Float64Array(S * N);
    for (let s = 0; s < S; s++) {
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) want[s * N + n] += x[s * K + k] * w[n * K + k];
      }
    }
    assertAllClose(await dev.readF32(y), want, { atol: 1e-6, rtol: 1e-5 }, "y at init");
  },
);

Deno.test("LoRA shapes and options are checked with clear errors", () => {
  const dev = new MetaDevice();
  const base = new Parameter("w", dev.tensor([8, 6], { tag: "weights", name: "w" }));
  const { a, b } = createLoraParameters(dev, "m", { r: 2, N: 8, K: 6 }, { seed: 1 });
  assert.throws(() => new LoraLinear(dev, "m", base, b, a, 1), /needs A \(r, 6\) and B \(8, r\)/);
  assert.throws(() => loraScaling(0, 16), /rank r must be a positive integer/);
  assert.throws(() => loraScaling(4, NaN), /alpha must be finite/);
  const layer = new LoraLinear(dev, "m", base, a, b, 1);
  const x = dev.tensor([3, 5], { tag: "data", name: "x" });
  assert.throws(() => layer.forward(x), /input must be \(S, 6\)/);
});

Deno.test(
  "AdamW steps a lone LoRA layer as an f64 reference does (4 steps, clipped)",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const c: Case = { S: 9, N: 13, K: 11, r: 4, base: "f32", bias: true };
    const p = inputs(c, 21);
    const opts: AdamWOptions = {
      lr: 1e-2,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      maxGradNorm: 0.5,
    };
    const layer = build(dev, c, p, 1);
    const opt = new AdamW(dev, opts);
    const x = dev.upload(Float32Array.from(p.x), [c.S, c.K], { tag: "data", name: "x" });
    const dy = dev.upload(Float32Array.from(p.R), [c.S, c.N], { tag: "data", name: "dy" });
    // reference state
    const A = Float64Array.from(p.a);
    const B = Float64Array.from(p.b);
    const m = [new Float64Array(A.length), new Float64Array(B.length)];
    const v = [new Float64Array(A.length), new Float64Array(B.length)];
    let worst = 0;
    for (let step = 1; step <= 4; step++) {
      const { out, saved } = layer.forward(x);
      layer.backward(dy, saved).dispose();
      out.dispose();
      opt.stepAll(layer.parameters);
      const g = reference({ ...p, a: A, b: B });
      const normSq = [...g.dA, ...g.dB].reduce((s, e) => s + e * e, 0);
      const hp = { ...opts, step, clip: { normSq, maxNorm: opts.maxGradNorm } };
      adamwRef(A, g.dA, m[0], v[0], hp);
      adamwRef(B, g.dB, m[1], v[1], hp);
      const gotA = await dev.readF32(layer.a.value);
      const gotB = await dev.readF32(layer.b.value);
      assertAllClose(gotA, A, { atol: 1e-6, rtol: 1e-5 }, `A after step ${step}`);
      assertAllClose(gotB, B, { atol: 1e-6, rtol: 1e-5 }, `B after step ${step}`);
      worst = Math.max(worst, maxAbs(gotA, A), maxAbs(gotB, B));
    }
    assert.equal((layer.base as Parameter).m, null, "no optimizer state for the base");
    assert.equal((layer.base as Parameter).grad, null, "no gradient for the base");
    console.log(`LoRA + AdamW, 4 steps: max |adapter − f64 reference| ${worst.toExponential(2)}`);
  },
);
