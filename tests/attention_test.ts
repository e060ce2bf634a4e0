/**
 * Causal attention: the f64 reference backward against finite differences, the WebGPU
 * kernels against the reference (GQA, sliding window, soft-cap, odd shapes, several
 * workgroups), memory growth linear in S, no leaks, and clear errors.
 */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import { isSwiftShader, WebGPUDevice } from "../lib/device/webgpu.ts";
import type { Tensor } from "../lib/device/tensor.ts";
import {
  attentionBackward,
  attentionForward,
  type AttentionOptions,
} from "../lib/ops/attention.ts";
import {
  attentionBackwardRef,
  attentionForwardRef,
  type AttentionRefOptions,
} from "../lib/reference/attention.ts";
import {
  assertAllClose,
  finiteDifferences,
  maxRelativeError,
  randomArray,
} from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";

interface Case {
  /** Bind k, v, q, dO as storage buffers instead of textures. */
  noStage?: boolean;
  S: number;
  H: number;
  KV: number;
  hd: number;
  window?: number;
  softcap?: number;
}

function options(c: Case): AttentionRefOptions {
  return {
    heads: c.H,
    kvHeads: c.KV,
    headDim: c.hd,
    scale: 1 / Math.sqrt(c.hd),
    window: c.window,
    softcap: c.softcap,
  };
}

/** Inputs with scores of a few units, so masks, soft-caps and the softmax all matter. */
function inputs(c: Case, seed: number) {
  return {
    q: randomArray(c.S * c.H * c.hd, seed, 3), // (S, H·hd)
    k: randomArray(c.S * c.KV * c.hd, seed + 1, 3), // (S, KV·hd)
    v: randomArray(c.S * c.KV * c.hd, seed + 2), // (S, KV·hd)
    dOut: randomArray(c.S * c.H * c.hd, seed + 3), // (S, H·hd)
  };
}

Deno.test("attention reference backward matches finite differences", () => {
  const cases: Case[] = [
    { S: 7, H: 2, KV: 1, hd: 4 },
    { S: 7, H: 4, KV: 2, hd: 4, window: 3 },
    { S: 6, H: 2, KV: 2, hd: 4, softcap: 1.5 },
    { S: 8, H: 3, KV: 1, hd: 4, window: 2, softcap: 2 },
  ];
  for (const c of cases) {
    const o = options(c);
    const { q, k, v, dOut } = inputs(c, 11);
    const g = attentionBackwardRef(dOut, q, k, v, o);
    const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array) => {
      const { out } = attentionForwardRef(qq, kk, vv, o);
      let s = 0;
      for (let i = 0; i < out.length; i++) s += dOut[i] * out[i];
      return s;
    };
    const what = JSON.stringify(c);
    assertAllClose(
      g.dq,
      finiteDifferences((x) => loss(x, k, v), q),
      { atol: 1e-7, rtol: 1e-5 },
      `dq ${what}`,
    );
    assertAllClose(
      g.dk,
      finiteDifferences((x) => loss(q, x, v), k),
      { atol: 1e-7, rtol: 1e-5 },
      `dk ${what}`,
    );
    assertAllClose(
      g.dv,
      finiteDifferences((x) => loss(q, k, x), v),
      { atol: 1e-7, rtol: 1e-5 },
      `dv ${what}`,
    );
  }
});

Deno.test("attention reference: window and soft-cap change the result", () => {
  const base: Case = { S: 37, H: 3, KV: 1, hd: 8 };
  const { q, k, v } = inputs(base, 5);
  const plain = attentionForwardRef(q, k, v, options(base)).out;
  for (const extra of [{ window: 5 }, { softcap: 2 }]) {
    const other = attentionForwardRef(q, k, v, options({ ...base, ...extra })).out;
    assert.ok(
      maxRelativeError(other, plain, 1e-3) > 0.05,
      `${JSON.stringify(extra)} has no effect`,
    );
  }
});

function upload(dev: Device, x: Float64Array, shape: number[], name: string): Tensor {
  return dev.upload(Float32Array.from(x), shape, { tag: "data", name });
}

const gpuCases: Case[] = [
  { S: 37, H: 3, KV: 1, hd: 8 },
  { S: 37, H: 4, KV: 2, hd: 16 },
  { S: 37, H: 4, KV: 2, hd: 16, window: 5 },
  { S: 37, H: 3, KV: 1, hd: 8, softcap: 50 },
  { S: 37, H: 3, KV: 1, hd: 16, softcap: 2 },
  { S: 37, H: 4, KV: 2, hd: 8, window: 5, softcap: 2 },
  { S: 37, H: 4, KV: 2, hd: 16, window: 1 }, // each row sees only itself
  { S: 1, H: 3, KV: 1, hd: 8 },
  // Several workgroups per head (a workgroup covers 256 rows at hd ≤ 16).
  { S: 300, H: 4, KV: 2, hd: 16 },
  { S: 300, H: 4, KV: 2, hd: 16, window: 70, softcap: 2 },
  // The storage-buffer path (tensors too large to stage as textures).
  { S: 300, H: 4, KV: 2, hd: 16, window: 70, softcap: 2, noStage: true },
  { S: 37, H: 3, KV: 1, hd: 8, noStage: true },
];

for (const c of gpuCases) {
  Deno.test({
    name: `attention webgpu vs f64 reference ${JSON.stringify(c)}`,
    ...gpuTest,
    fn: async () => {
      const dev = await testDevice();
      const o: AttentionOptions = { ...options(c), stage: !c.noStage };
      const { q, k, v, dOut } = inputs(c, 21);
      const ref = attentionForwardRef(q, k, v, o);
      const refGrad = attentionBackwardRef(dOut, q, k, v, o);
      const marker = dev.allocator.nextId;
      const tq = upload(dev, q, [c.S, c.H * c.hd], "q");
      const tk = upload(dev, k, [c.S, c.KV * c.hd], "k");
      const tv = upload(dev, v, [c.S, c.KV * c.hd], "v");
      const tdo = upload(dev, dOut, [c.S, c.H * c.hd], "dOut");
      const { out, lse } = attentionForward(dev, tq, tk, tv, o);
      const { dq, dk, dv } = attentionBackward(dev, tdo, tq, tk, tv, out, lse, o);
      const tol = { atol: 2e-5, rtol: 2e-4 };
      assertAllClose(await dev.readF32(out), ref.out, tol, "out");
      assertAllClose(await dev.readF32(lse), ref.lse, tol, "lse");
      assertAllClose(await dev.readF32(dq), refGrad.dq, tol, "dq");
      assertAllClose(await dev.readF32(dk), refGrad.dk, tol, "dk");
      assertAllClose(await dev.readF32(dv), refGrad.dv, tol, "dv");
      assert.equal(dq.tag, "activations");
      for (const t of [tq, tk, tv, tdo, out, lse, dq, dk, dv]) t.dispose();
      dev.allocator.assertNoLeaksSince(marker);
    },
  });
}

/** Peak bytes of forward + backward above the inputs, and the workspace bytes seen. */
function attentionPeak(dev: Device, S: number): { peak: number; workspace: number } {
  const o: AttentionOptions = { heads: 4, kvHeads: 2, headDim: 16, scale: 0.25 };
  const marker = dev.allocator.nextId;
  const q = dev.zeros([S, 64], { tag: "data", name: "q" });
  const k = dev.zeros([S, 32], { tag: "data", name: "k" });
  const v = dev.zeros([S, 32], { tag: "data", name: "v" });
  const dOut = dev.zeros([S, 64], { tag: "data", name: "dOut" });
  const inputs = dev.allocator.liveBytes;
  dev.allocator.resetPeak();
  dev.allocator.startTimeline();
  const { out, lse } = attentionForward(dev, q, k, v, o);
  const g = attentionBackward(dev, dOut, q, k, v, out, lse, { ...o, tag: "grads" });
  const events = dev.allocator.stopTimeline();
  const peak = dev.allocator.stats().peakBytes - inputs;
  assert.equal(dev.allocator.stats().liveByTag.workspace, 0, "workspace left live");
  assert.equal(g.dk.tag, "grads");
  for (const t of [q, k, v, dOut, out, lse, g.dq, g.dk, g.dv]) t.dispose();
  dev.allocator.assertNoLeaksSince(marker);
  const workspace = events.filter((e) => e.kind === "alloc" && e.tag === "workspace")
    .reduce((a, e) => a + e.bytes, 0);
  return { peak, workspace };
}

Deno.test("attention memory grows linearly in S (meta device)", () => {
  const dev = new MetaDevice();
  const a = attentionPeak(dev, 512);
  const b = attentionPeak(dev, 2048);
  const ratio = b.peak / a.peak;
  console.log(
    `attention fwd+bwd peak above inputs: S=512 ${a.peak} B, S=2048 ${b.peak} B, ratio ${ratio}`,
  );
  assert.ok(ratio > 3.9 && ratio < 4.1, `peak ratio ${ratio} is not linear (expected ≈ 4)`);
  // Staged textures (workspace) are whole rows of 4096 floats.
  const tex = (floats: number) => Math.ceil(floats / 4096) * 4096 * 4;
  // out + lse + dq + dk + dv + D (workspace), plus the dk/dv kernel's q and dO textures: all
  // O(S·d).
  assert.equal(a.peak, 4 * 512 * (64 + 4 + 64 + 32 + 32 + 4) + 2 * tex(512 * 64));
  // D, then k and v textures (forward and dq kernels), then q and dO textures (dk/dv kernel).
  assert.equal(a.workspace, 4 * 4 * 512 + 4 * tex(512 * 32) + 2 * tex(512 * 64));
});

Deno.test({
  name: "attention memory on webgpu equals the meta device's plan",
  ...gpuTest,
  fn: async () => {
    const dev = await testDevice();
    for (const S of [512, 2048]) {
      const gpu = attentionPeak(dev, S);
      await dev.sync();
      assert.deepEqual(gpu, attentionPeak(new MetaDevice(), S));
    }
  },
});

Deno.test("attention rejects bad shapes and options with clear errors", () => {
  const dev = new MetaDevice();
  const o: AttentionOptions = { heads: 4, kvHeads: 2, headDim: 16, scale: 0.25 };
  const q = dev.tensor([10, 64], { tag: "data", name: "q" });
  const k = dev.tensor([10, 32], { tag: "data", name: "k" });
  const v = dev.tensor([10, 32], { tag: "data", name: "v" });
  assert.throws(() => attentionForward(dev, q, k, v, { ...o, kvHeads: 3 }), /multiple of kvHeads/);
  assert.throws(
    () => attentionForward(dev, q, k, v, { ...o, headDim: 6, heads: 2 }),
    /multiple of 4/,
  );
  assert.throws(() => attentionForward(dev, q, k, v, { ...o, window: -1 }), /window/);
  assert.throws(() => attentionForward(dev, q, k, v, { ...o, softcap: -2 }), /softcap/);
  assert.throws(
    () => attentionForward(dev, q, q, v, o),
    /k \(S, KV·hd\): expected shape \[10, 32\]/,
  );
  const { out, lse } = attentionForward(dev, q, k, v, o);
  const badLse = dev.tensor([10, 4], { tag: "data", name: "lse" });
  assert.throws(() => attentionBackward(dev, out, q, k, v, out, badLse, o), /lse \(H, S\)/);
  assert.throws(() => attentionBackward(dev, k, q, k, v, out, lse, o), /dOut/);
});

Deno.test({
  name:
    "attention with small kernel tiles (SwiftShader's): bit-identical without a window, within 1 ulp-ish with one",
  ...gpuTest,
  fn: async () => {
    const large = await testDevice();
    assert.equal(large.kernelTiles, "large", "lavapipe keeps the tuned tiles");
    assert.ok(isSwiftShader({ vendor: "google", architecture: "swiftshader" } as GPUAdapterInfo));
    assert.ok(!isSwiftShader(large.adapterInfo));
    const small = await WebGPUDevice.create({ kernelTiles: "small" });
    try {
      for (
        const c of [
          { S: 300, H: 4, KV: 2, hd: 16 },
          { S: 70, H: 4, KV: 2, hd: 16, window: 20, softcap: 2 },
          { S: 37, H: 3, KV: 1, hd: 8, noStage: true },
        ] as Case[]
      ) {
        const o: AttentionOptions = { ...options(c), stage: !c.noStage };
        const { q, k, v, dOut } = inputs(c, 5);
        const run = async (dev: Device) => {
          const tq = upload(dev, q, [c.S, c.H * c.hd], "q");
          const tk = upload(dev, k, [c.S, c.KV * c.hd], "k");
          const tv = upload(dev, v, [c.S, c.KV * c.hd], "v");
          const tdo = upload(dev, dOut, [c.S, c.H * c.hd], "dOut");
          const { out, lse } = attentionForward(dev, tq, tk, tv, o);
          const { dq, dk, dv } = attentionBackward(dev, tdo, tq, tk, tv, out, lse, o);
          const r = [];
          for (const t of [out, lse, dq, dk, dv]) r.push(await dev.readF32(t));
          for (const t of [tq, tk, tv, tdo, out, lse, dq, dk, dv]) t.dispose();
          return r;
        };
        const [a, b] = [await run(small), await run(large)];
        // rows per block move where a windowed block's key chunks start and how dk/dv's
        // accumulation is split, so those results move by rounding only
        for (let i = 0; i < a.length; i++) {
          assertAllClose(a[i], b[i], { atol: 1e-6, rtol: 1e-6 }, JSON.stringify(c));
        }
        if (!c.window) {
          assert.deepEqual(a.slice(0, 2), b.slice(0, 2), `forward ${JSON.stringify(c)}`);
        }
      }
    } finally {
      small.destroy();
    }
  },
});
