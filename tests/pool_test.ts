/**
 * What the device holds beyond the live tensors: the pool of every resource kind (reserved
 * bytes), the parameter cache and the bind group cache — the same on meta as on WebGPU.
 */

import assert from "node:assert/strict";
import { MetaDevice, Params, sizeClassOf, WebGPUDevice } from "../lib/device/mod.ts";
import { getPreset } from "../lib/config/presets.ts";
import { Model } from "../lib/models/model.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { planStep } from "../lib/plan/planner.ts";
import { LAVAPIPE_OVERHEAD, overheadBytes } from "../lib/device/overhead.ts";
import { parseProcStatus } from "../lib/util/proc_status.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { kernelSource, paramsInStorageSource } from "../lib/device/kernel_source.ts";
import { canStageAsTexture, MAX_TEXTURE_ROWS, TEXTURE_ROW_FLOATS } from "../lib/device/texture.ts";

const KERNEL = `struct P { n: u32, a: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(1) @binding(0) var<uniform> p: P;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < p.n) { x[g.x] = x[g.x] * p.a; }
}`;

Deno.test("textures, uniforms and readbacks are reserved per kind, never live", async () => {
  const dev = new MetaDevice();
  const x = dev.tensor([4096 * 3], { tag: "activations", name: "x" }); // 48 KiB → 64 KiB class
  const tex = dev.texture(x); // 3 rows of 16 KiB → 4 rows
  assert.equal(dev.allocator.stats().liveByTag.workspace, 3 * 16384);
  dev.dispatch({
    kernel: "k",
    source: KERNEL,
    bindings: [x],
    params: new Params().u32(1).f32(2),
    workgroups: [1],
  });
  tex.dispose();
  await dev.read(x);
  const s = dev.allocator.stats();
  assert.equal(s.liveBytes, x.bytes);
  assert.deepEqual(s.reservedByKind, {
    storage: 65536,
    texture: 65536,
    uniform: 256,
    readback: 65536,
    upload: 0,
  });
  assert.equal(s.reservedBytes, 3 * 65536 + 256);
  assert.equal(s.peakReservedBytes, s.reservedBytes);
  // A second texture of the same size class reuses the pooled one.
  dev.texture(x).dispose();
  assert.equal(dev.allocator.stats().reservedByKind.texture, 65536);
  x.dispose();
  dev.destroy();
  assert.equal(dev.allocator.stats().reservedBytes, 0);
});

Deno.test("the parameter cache: one buffer per distinct block, least recently used out", () => {
  const dev = new MetaDevice({ paramsEntries: 3 });
  const x = dev.tensor([64], { tag: "activations", name: "x" });
  const run = (a: number) =>
    dev.dispatch({
      kernel: "k",
      source: KERNEL,
      bindings: [x],
      params: new Params().u32(64).f32(a),
      workgroups: [1],
    });
  run(1);
  run(1);
  run(2);
  assert.equal(dev.paramsCacheSize, 2);
  assert.equal(dev.allocator.stats().reservedByKind.uniform, 2 * 256);
  run(3);
  run(4); // pushes out a=1; its buffer is reused, nothing new is reserved
  assert.equal(dev.paramsCacheSize, 3);
  assert.equal(dev.allocator.stats().reservedByKind.uniform, 3 * 256);
  // A zero-size dispatch runs nothing and caches nothing, on both devices.
  dev.dispatch({
    kernel: "k",
    source: KERNEL,
    bindings: [x],
    params: new Params().u32(0).f32(9),
    workgroups: [0],
  });
  assert.equal(dev.paramsCacheSize, 3);
  assert.equal(dev.pipelineCount, 1);
  x.dispose();
});

Deno.test(
  "webgpu: a repeated dispatch reuses its bind groups and parameter buffer",
  gpuTest,
  async () => {
    const gpu = await testDevice();
    const x = gpu.upload([1, 2, 3], [3], { tag: "activations", name: "x" });
    const before = gpu.bindGroupStats();
    const call = () =>
      gpu.dispatch({
        kernel: "scale_test",
        source: KERNEL,
        bindings: [x],
        params: new Params().u32(3).f32(2),
        workgroups: [1],
      });
    call();
    call();
    call();
    const after = gpu.bindGroupStats();
    assert.equal(after.misses - before.misses, 1, "one bind group for three equal dispatches");
    assert.equal(after.hits - before.hits, 2);
    assert.deepEqual([...await gpu.read(x)], [8, 16, 24]); // the cached parameters were right
    x.dispose();
  },
);

Deno.test(
  "webgpu and meta reserve the same pool and compile the same pipelines for training steps",
  gpuTest,
  async () => {
    const cfg = getPreset("llama3-tiny");
    const ids = Int32Array.from({ length: 200 }, (_, i) => (i * 31) % cfg.vocabSize);
    const policies = [
      {},
      { checkpoint: true, mst: { mlp: 3, head: 2 } },
      { checkpoint: true, mst: { mlp: 3, head: 2 }, offload: true },
    ] as const;
    const run = async (dev: WebGPUDevice | MetaDevice, policy: (typeof policies)[number]) => {
      const model = Model.build(dev, cfg, policy, { seed: 1 });
      const trainer = new Trainer(dev, model);
      const steps = [];
      for (let i = 0; i < 2; i++) steps.push(await trainer.step({ ids, targets: ids }));
      model.dispose();
      const s = dev.allocator.stats();
      return {
        peaks: steps.map((r) => [r.peakBytes, r.reservedBytes]),
        reservedByKind: s.reservedByKind,
        pipelines: dev.pipelineCount,
        params: dev.paramsCacheSize,
      };
    };
    // A fresh device: the shared test device's pool already holds other tests' buffers. Both
    // devices run the policies in the same order and release their pools in between.
    const gpu = await WebGPUDevice.create();
    const meta = new MetaDevice({ limits: gpu.limits });
    try {
      for (const policy of policies) {
        const onGpu = await run(gpu, policy);
        const onMeta = await run(meta, policy);
        assert.ok(onGpu.reservedByKind.texture > 0 && onGpu.reservedByKind.uniform > 0);
        // offload copies each (S, d) checkpoint out through a readback buffer and back in
        // through an upload buffer, both pooled
        const offload = "offload" in policy;
        assert.equal(onGpu.reservedByKind.upload, offload ? sizeClassOf(200 * cfg.hidden * 4) : 0);
        if (offload) assert.ok(onGpu.reservedByKind.readback >= sizeClassOf(200 * cfg.hidden * 4));
        assert.deepEqual(onMeta, onGpu);
        gpu.allocator.releaseCached();
        meta.allocator.releaseCached();
        // Only what the caches hold is left: parameter buffers and readback buffers.
        const kept = gpu.allocator.stats().reservedByKind;
        assert.equal(kept.storage + kept.texture, 0);
      }
    } finally {
      gpu.destroy();
    }
  },
);

Deno.test("the planner reports the pool's peak and the modelled driver overhead", async () => {
  const cfg = getPreset("llama3-tiny");
  const base = { cfg, dtype: "f32" as const, policy: {} };
  const plan = await planStep({ ...base, seq: 512, budget: Infinity });
  assert.ok(plan.reservedBytes >= plan.peakBytes, "the pool holds at least the live peak");
  assert.ok(plan.pipelines > 5);
  assert.equal(plan.overheadBytes, overheadBytes(LAVAPIPE_OVERHEAD, plan.pipelines));
  const longer = await planStep({ ...base, seq: 2048, budget: Infinity });
  assert.ok(longer.reservedBytes > plan.reservedBytes);
  assert.equal(longer.overheadBytes, plan.overheadBytes, "pipelines do not depend on S");
});

Deno.test("/proc status parsing: VmRSS and VmHWM in bytes, null when absent", () => {
  const text = "Name:\tdeno\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n";
  assert.deepEqual(parseProcStatus(text), { rssBytes: 100 * 2 ** 20, peakRssBytes: 200 * 2 ** 20 });
  assert.equal(parseProcStatus("Name:\tdeno\n"), null);
});

Deno.test("staging: at most 8192 texture rows, WebGPU's default maxTextureDimension2D", () => {
  const dev = new MetaDevice();
  const rowFloats = TEXTURE_ROW_FLOATS;
  const fits = dev.tensor([MAX_TEXTURE_ROWS * rowFloats], { tag: "activations", name: "fits" });
  const tooBig = dev.tensor([(MAX_TEXTURE_ROWS + 1) * rowFloats], {
    tag: "activations",
    name: "big",
  });
  assert.equal(MAX_TEXTURE_ROWS, 8192);
  assert.ok(canStageAsTexture(fits));
  assert.ok(!canStageAsTexture(tooBig));
  const tex = dev.texture(fits);
  assert.ok(
    tex.block.sizeClass / (rowFloats * 4) <= 8192,
    "the pooled texture is within 8192 rows",
  );
  tex.dispose();
  assert.throws(() => dev.texture(tooBig), /cannot stage "big"/);
  fits.dispose();
  tooBig.dispose();
  dev.destroy();
});

Deno.test("every kernel's only uniform is its parameter block, so the storage variant moves just it", () => {
  const dir = new URL("../kernels/", import.meta.url);
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".wgsl")) continue;
    const source = kernelSource(entry.name.slice(0, -5)); // with its snippets
    const uniforms = source.match(/var<uniform>[^;]*;/g) ?? [];
    assert.ok(
      uniforms.every((u) => u === "var<uniform> p: Params;"),
      `${entry.name}: ${uniforms.join(", ")}`,
    );
    const moved = paramsInStorageSource(source);
    assert.ok(!moved.includes("var<uniform>"), entry.name);
    if (uniforms.length === 0) continue;
    // every entry point starts with the copy of the block
    const entries = source.match(/@compute/g)?.length ?? 0;
    assert.ok(entries >= 1, entry.name);
    assert.equal(moved.split("p = p_storage;").length - 1, entries, entry.name);
  }
});

Deno.test(
  "webgpu: parameter blocks in uniform or storage buffers give the same results; lavapipe uses storage",
  gpuTest,
  async () => {
    const results: number[][] = [];
    for (const paramsIn of ["uniform", "storage"] as const) {
      const gpu = await WebGPUDevice.create({ paramsIn });
      try {
        assert.equal(gpu.paramsIn, paramsIn);
        const x = gpu.upload([1, 2, 3], [3], { tag: "activations", name: "x" });
        gpu.dispatch({
          kernel: "scale_params_test",
          source: KERNEL.replace("struct P {", "struct Params {").replace("p: P;", "p: Params;"),
          bindings: [x],
          params: new Params().u32(2).f32(3),
          workgroups: [1],
        });
        results.push([...await gpu.read(x)]);
      } finally {
        gpu.destroy();
      }
    }
    assert.deepEqual(results, [[3, 6, 3], [3, 6, 3]]); // n = 2 rows scaled by 3
    const gpu = await testDevice();
    if (/llvmpipe|lavapipe/i.test(gpu.adapterInfo.description)) {
      assert.equal(gpu.paramsIn, "storage");
    }
  },
);
