/**
 * AdamW vs the f64 reference over several steps, with and without clipping; the multi-tensor
 * kernel on mixed odd sizes (k = 1 and the device's most), equal to the one-tensor kernel;
 * meta parity; in training, groups follow the device's storage-binding limit and leave the
 * allocations unchanged.
 */

import assert from "node:assert/strict";
import type { MemoryEvent } from "../lib/device/allocator.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import { Model } from "../lib/models/model.ts";
import { getPreset } from "../lib/config/presets.ts";
import {
  ADAMW_GROUP_WASTE,
  adamwGroups,
  adamwGroupSize,
  adamwUpdate,
  adamwUpdateMulti,
  MAX_ADAMW_GROUP,
} from "../lib/ops/adamw.ts";
import { sumSquares } from "../lib/ops/reduce.ts";
import { adamwRef } from "../lib/reference/adamw.ts";
import { sumSquaresRef } from "../lib/reference/reduce.ts";
import { makeBatches } from "../lib/train/data_source.ts";
import { runSteps } from "../lib/train/run_steps.ts";
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

Deno.test("adamw group sizes follow the device's storage-binding limit", () => {
  const of = (n: number) => new MetaDevice({ limits: { maxStorageBuffersPerShaderStage: n } });
  const size = (dev: MetaDevice, clip: boolean, work: boolean) =>
    adamwGroupSize(dev, { clip, work });
  assert.equal(size(new MetaDevice(), true, true), MAX_ADAMW_GROUP, "no limit: the cap");
  // lavapipe's 32, less the parameter block: 4 bindings per tensor (5 with the working copy)
  assert.deepEqual([size(of(32), false, false), size(of(32), true, false)], [7, 7]);
  assert.deepEqual([size(of(32), false, true), size(of(32), true, true)], [6, 6]);
  assert.deepEqual([size(of(8), true, false), size(of(8), true, true)], [1, 1], "default 8");
});

Deno.test("adamw groups: similar sizes together, keys apart, at most `most` per group", () => {
  const t = (size: number, key = "f32") => ({ size, key });
  // sorted by size: same-shape weights of different layers group; two 2048s take the 4096s
  // (4096 masked slots, at the bound), the 11264s stay apart from both neighbours
  const sizes = [4096, 64, 2048, 64, 4096, 2048, 64, 11264, 11264, 11264, 262144, 262144];
  assert.deepEqual(adamwGroups(sizes.map((n) => t(n)), 7), [
    [1, 3, 6],
    [2, 5, 0, 4],
    [7, 8, 9],
    [10, 11],
  ]);
  assert.deepEqual(adamwGroups(sizes.map((n) => t(n)), 2), [
    [1, 3],
    [6, 2],
    [5, 0],
    [4],
    [7, 8],
    [9],
    [10, 11],
  ]);
  assert.deepEqual(adamwGroups(sizes.map((n) => t(n)), 1).length, sizes.length);
  // four 2048s would mask 4 × 2048 slots for a 4096: apart (llama3-tiny's k/v and q/o)
  assert.deepEqual(adamwGroups([2048, 2048, 2048, 2048, 4096].map((n) => t(n)), 7), [
    [0, 1, 2, 3],
    [4],
  ]);
  // small tensors of any size share a dispatch while the masked slots stay under the bound
  assert.deepEqual(adamwGroups([1, 3, 257, 1000].map((n) => t(n)), 16), [[0, 1, 2, 3]]);
  assert.deepEqual(adamwGroups([t(1000), t(1000, "f16"), t(1000)], 16), [[1], [0, 2]]);
  const spread = adamwGroups([t(10), t(ADAMW_GROUP_WASTE + 11)], 16);
  assert.deepEqual(spread, [[0], [1]], "one masked slot past the bound splits");
  assert.deepEqual(adamwGroups([t(10), t(ADAMW_GROUP_WASTE + 10)], 16), [[0, 1]]);
  assert.deepEqual(adamwGroups([], 4), []);
});

/** Sizes mixed in one group: a single element, below, at and past the workgroup of 256. */
const SIZES = [1, 3, 257, 1000, 256, 255, 513, 64, 2, 4097];
/** Multiples of 4 only: the kernel's vec4 variant. */
const SIZES4 = [4, 12, 1028, 1000, 256, 64, 4096, 8, 260, 516];

for (const [maxNorm, scale] of [[undefined, 1], [2, 1], [1000, 256]] as const) {
  Deno.test(
    `multi-tensor adamw (k = 1 and k = max; odd sizes and vec4 units) matches the reference and ` +
      `the one-tensor kernel ` +
      `(clip ${maxNorm ?? "off"}, loss scale ${scale})`,
    gpuTest,
    async () => {
      const dev = await testDevice();
      const most = adamwGroupSize(dev, { clip: maxNorm !== undefined, work: false });
      assert.ok(most > 1 && most <= SIZES.length, `lavapipe groups ${most} tensors`);
      for (
        const [k, sizes] of [1, most].flatMap((k) =>
          [SIZES, SIZES4].map((s) => [k, s.slice(0, k)] as const)
        )
      ) {
        const refs = sizes.map((n, j) => ({
          p: Float64Array.from(Float32Array.from(randomArray(n, 100 + j))),
          m: new Float64Array(n),
          v: new Float64Array(n),
          wd: j % 2 === 0 ? hp.weightDecay : 0,
        }));
        const make = () =>
          refs.map((r) => ({
            p: dev.upload(Float32Array.from(r.p), [r.p.length], { tag: "weights" }),
            m: dev.zeros([r.p.length], { tag: "optimizer" }),
            v: dev.zeros([r.p.length], { tag: "optimizer" }),
          }));
        const [multi, single] = [make(), make()];
        for (let step = 1; step <= 3; step++) {
          // gradients of a loss scaled by `scale` (a power of two: exact in f32)
          const gs = sizes.map((n, j) =>
            Float64Array.from(Float32Array.from(randomArray(n, 10 * step + j, 0.5)))
          );
          const gTs = gs.map((g) =>
            dev.upload(Float32Array.from(g, (x) => x * scale), [g.length], { tag: "grads" })
          );
          const normSq = maxNorm === undefined ? undefined : sumSquares(dev, gTs);
          const clip = normSq ? { normSq, maxNorm: maxNorm! } : undefined;
          const opts = { ...hp, step, clip, invScale: 1 / scale };
          adamwUpdateMulti(
            dev,
            multi.map((t, j) => ({ param: t.p, grad: gTs[j], ...t, weightDecay: refs[j].wd })),
            opts,
          );
          single.forEach((t, j) =>
            adamwUpdate(dev, t.p, gTs[j], t.m, t.v, { ...opts, weightDecay: refs[j].wd })
          );
          const refClip = maxNorm === undefined ? undefined : {
            normSq: sumSquaresRef(gs),
            maxNorm,
          };
          refs.forEach((r, j) =>
            adamwRef(r.p, gs[j], r.m, r.v, { ...hp, weightDecay: r.wd, step, clip: refClip })
          );
          for (const t of [...gTs, normSq]) t?.dispose();
        }
        const tol = { atol: 1e-6, rtol: 1e-5 };
        for (let j = 0; j < k; j++) {
          const what = `k ${k}, tensor ${j} of [${sizes}]`;
          const p = await dev.readF32(multi[j].p);
          assertAllClose(p, refs[j].p, tol, `param of ${what}`);
          assertAllClose(await dev.readF32(multi[j].m), refs[j].m, tol, `m of ${what}`);
          assertAllClose(await dev.readF32(multi[j].v), refs[j].v, { atol: 1e-9, rtol: 1e-5 }, `v`);
          assert.deepEqual(p, await dev.readF32(single[j].p), `${what}: as the one-tensor kernel`);
        }
        for (const t of [...multi, ...single]) for (const x of [t.p, t.m, t.v]) x.dispose();
      }
    },
  );
}

Deno.test("multi-tensor adamw errors say what was wrong", gpuTest, async () => {
  const dev = await testDevice();
  const t = (name: string) => dev.zeros([5], { tag: "weights", name });
  const one = () => ({ param: t("w"), grad: t("g"), m: t("m"), v: t("v"), weightDecay: 0 });
  const most = adamwGroupSize(dev, { clip: false, work: false });
  const many = Array.from({ length: most + 1 }, one);
  assert.throws(() => adamwUpdateMulti(dev, [], { ...hp, step: 1 }), /at least one tensor/);
  assert.throws(
    () => adamwUpdateMulti(dev, many, { ...hp, step: 1 }),
    new RegExp(`${most + 1} tensors, but one dispatch takes at most ${most}`),
  );
  const withWork = { ...many[1], work: t("work") };
  assert.throws(
    () => adamwUpdateMulti(dev, [many[0], withWork], { ...hp, step: 1 }),
    /"w" has a working copy, unlike "w"|lacks a working copy/,
  );
  for (const x of [...many, withWork]) for (const y of [x.param, x.grad, x.m, x.v]) y.dispose();
  withWork.work.dispose();
});

Deno.test("multi-tensor adamw allocates the same on meta as on webgpu", gpuTest, async () => {
  const dev = await testDevice();
  await assertSameAllocations(dev, (dv) => {
    const ts = [37 * 24, 5, 300].map((n) => {
      const [param, grad, m, v] = ["p", "g", "m", "v"].map((name) =>
        dv.zeros([n], { tag: "weights", name })
      );
      return { param, grad, m, v, weightDecay: 0.1 };
    });
    const normSq = sumSquares(dv, ts.map((t) => t.grad));
    adamwUpdateMulti(dv, ts, { ...hp, step: 1, clip: { normSq, maxNorm: 1 } });
    for (const t of ts) for (const x of [t.param, t.grad, t.m, t.v]) x.dispose();
    normSq.dispose();
  });
});

Deno.test(
  "training: a full step groups parameters by the storage-binding limit; events and peaks do not depend on it",
  async () => {
    const cfg = getPreset("llama3-tiny");
    const model = Model.build(new MetaDevice(), cfg);
    const P = model.params.length;
    model.dispose();
    let first: { events: MemoryEvent[]; peaks: number[] } | null = null;
    const totals: number[][] = []; // dispatches so far after each step
    for (const limit of [8, 32, Infinity]) {
      const dev = new MetaDevice({ limits: { maxStorageBuffersPerShaderStage: limit } });
      const after: number[] = [];
      const data = await makeBatches("repeat", cfg, 64, 1);
      dev.allocator.startTimeline();
      const r = await runSteps(dev, cfg, {}, data, {
        steps: 3,
        init: { seed: 1 },
        onStep: () => void after.push(dev.dispatches),
      });
      const m = { events: dev.allocator.stopTimeline(), peaks: r.steps.map((x) => x.peakBytes) };
      first ??= m;
      assert.deepEqual(m.events, first.events, `limit ${limit}: the same allocations and frees`);
      assert.deepEqual(m.peaks, first.peaks);
      totals.push(after);
    }
    const [d8, d32, dInf] = totals.map((t) => [t[0], t[1] - t[0], t[2] - t[1]]);
    // the squared norm's first stage reads 6 (limit 8), 30 (32) or 32 (no limit) gradients per
    // dispatch; step 1 creates the moments one parameter at a time, later steps group AdamW by
    // size: 1 parameter per dispatch at limit 8; at 32 (7 per dispatch) and with no limit, five
    // groups: the 5 norms, k/v, q/o, the 6 MLP matrices, embedding and head
    const c = (k: number) => Math.ceil(P / k);
    assert.equal(P, 5 + 4 + 4 + 6 + 2, "llama3-tiny's parameters");
    assert.equal(d8[0] - d32[0], c(6) - c(30), "step 1");
    assert.equal(d8[1] - d32[1], P - 5 + c(6) - c(30), "step 2, limit 8 vs 32");
    assert.equal(d32[1] - dInf[1], c(30) - c(32), "step 2, limit 32 vs none");
    assert.equal(d32[2], d32[1], "step 3 as step 2");
  },
);
