/** The device layer: accounting, pool reuse, timeline, budget errors, leaks, compile errors. */

import assert from "node:assert/strict";
import {
  type Device,
  LeakError,
  MetaDevice,
  OutOfMemoryError,
  Params,
  sizeClassOf,
  WGSLCompileError,
} from "../lib/device/mod.ts";
import { add, addInPlace } from "../lib/ops/add.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";

Deno.test("size classes: powers of two to 1 MiB, then whole MiB", () => {
  assert.equal(sizeClassOf(1), 256);
  assert.equal(sizeClassOf(257), 512);
  assert.equal(sizeClassOf(1 << 20), 1 << 20);
  assert.equal(sizeClassOf((1 << 20) + 1), 2 << 20);
  assert.equal(sizeClassOf(5.5 * 2 ** 20), 6 * 2 ** 20);
});

Deno.test("pool reuses freed blocks of the same size class; reserved stays, live drops", () => {
  const dev = new MetaDevice();
  const a = dev.tensor([1000], { tag: "activations", name: "a" }); // 4000 B → 4096 class
  a.dispose();
  let s = dev.allocator.stats();
  assert.equal(s.liveBytes, 0);
  assert.equal(s.reservedBytes, 4096);
  const b = dev.tensor([900], { tag: "workspace", name: "b" }); // 3600 B → same class
  s = dev.allocator.stats();
  assert.equal(s.poolHits, 1);
  assert.equal(s.reservedBytes, 4096);
  assert.equal(s.liveBytes, 3600);
  const c = dev.tensor([2000], { tag: "workspace", name: "c" }); // new class 8192
  assert.equal(dev.allocator.stats().reservedBytes, 4096 + 8192);
  b.dispose();
  c.dispose();
  dev.allocator.releaseCached();
  assert.equal(dev.allocator.stats().reservedBytes, 0);
});

Deno.test("peak and the per-tag breakdown at the peak", () => {
  const dev = new MetaDevice();
  const w = dev.tensor([100], { tag: "weights" });
  const x = dev.tensor([50], { tag: "activations" });
  const y = dev.tensor([200], { tag: "logits" });
  y.dispose();
  x.dispose();
  const g = dev.tensor([100], { tag: "grads" });
  const s = dev.allocator.stats();
  assert.equal(s.peakBytes, 4 * 350);
  assert.deepEqual(
    Object.fromEntries(Object.entries(s.peakBreakdown).filter(([, b]) => b > 0)),
    { weights: 400, activations: 200, logits: 800 },
  );
  const sum = Object.values(s.peakBreakdown).reduce((a, b) => a + b, 0);
  assert.equal(sum, s.peakBytes);
  assert.equal(s.liveBytes, 800);
  w.dispose();
  g.dispose();
});

Deno.test("the meta device counts floats as bf16 when asked, ids stay 4 bytes", () => {
  const dev = new MetaDevice({ floats: "bf16" });
  const x = dev.tensor([10, 10], { tag: "activations" });
  const ids = dev.tensor([10], { tag: "data", dtype: "i32" });
  assert.equal(x.bytes, 200);
  assert.equal(ids.bytes, 40);
});

Deno.test("timeline records alloc/free with phases", () => {
  const dev = new MetaDevice();
  dev.allocator.startTimeline();
  dev.setPhase("forward");
  const a = dev.tensor([4], { tag: "activations", name: "a" });
  dev.setPhase("backward");
  a.dispose();
  const ev = dev.allocator.stopTimeline();
  assert.deepEqual(
    ev.map((e) => [e.kind, e.name, e.phase, e.bytes, e.liveBytes]),
    [["alloc", "a", "forward", 16, 16], ["free", "a", "backward", 16, 0]],
  );
});

Deno.test("OutOfMemoryError names the request, live bytes per tag and largest tensors", () => {
  const dev = new MetaDevice();
  dev.setBudget(10_000);
  const w = dev.tensor([1500], { tag: "weights", name: "embed" });
  const x = dev.tensor([500], { tag: "activations", name: "h0" });
  let err: unknown;
  try {
    dev.tensor([1000], { tag: "logits", name: "logits" });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof OutOfMemoryError, "expected OutOfMemoryError");
  assert.equal(err.requestedBytes, 4000);
  assert.equal(err.tag, "logits");
  assert.match(err.message, /3\.91 KiB for tag "logits"/);
  assert.match(err.message, /weights\s+5\.86 KiB/);
  assert.match(err.message, /activations\s+1\.95 KiB/);
  assert.match(err.message, /#\d+ embed \(weights\)/);
  assert.match(err.message, /--mst/);
  // Nothing was allocated by the failed request.
  assert.equal(dev.allocator.liveBytes, 8000);
  w.dispose();
  x.dispose();
});

Deno.test("scope frees temporaries and keeps what it returns", () => {
  const dev = new MetaDevice();
  const marker = dev.allocator.nextId;
  const kept = dev.scope(() => {
    dev.tensor([10], { tag: "workspace", name: "tmp" });
    return { out: dev.tensor([10], { tag: "activations", name: "out" }) };
  });
  assert.equal(dev.allocator.liveBytes, 40);
  kept.out.dispose();
  dev.allocator.assertNoLeaksSince(marker);
});

Deno.test("the leak check catches a deliberately leaked tensor", () => {
  const dev = new MetaDevice();
  const marker = dev.allocator.nextId;
  const t = dev.tensor([64], { tag: "activations", name: "forgotten" });
  assert.throws(() => dev.allocator.assertNoLeaksSince(marker), (e: unknown) => {
    assert.ok(e instanceof LeakError);
    assert.match(e.message, /forgotten \(activations\) 256 B/);
    return true;
  });
  t.dispose();
  dev.allocator.assertNoLeaksSince(marker);
});

Deno.test("reshape shares storage; the block is freed with the last view", () => {
  const dev = new MetaDevice();
  const a = dev.tensor([4, 6], { tag: "activations" });
  const b = a.reshape([24]);
  a.dispose();
  assert.equal(dev.allocator.liveBytes, 96);
  b.dispose();
  assert.equal(dev.allocator.liveBytes, 0);
  assert.throws(() => a.reshape([2, 12]), /used after dispose/);
});

/** A small sequence of real ops: the same calls on any device. */
async function program(dev: Device): Promise<Float32Array> {
  dev.allocator.startTimeline();
  dev.setPhase("forward");
  const a = dev.upload([1, 2, 3, 4, 5, 6, 7], [7], { tag: "weights", name: "a" });
  const b = dev.upload([7, 6, 5, 4, 3, 2, 1], [7], { tag: "activations", name: "b" });
  const out = dev.scope(() => {
    const c = add(dev, a, b, { name: "c" }); // 8 each
    const d = add(dev, c, a, { name: "d" }); // 9..15
    dev.setPhase("backward");
    addInPlace(dev, d, c, 0.5); // +4
    return d;
  });
  const z = dev.zeros([1000], { tag: "grads", name: "z" });
  const zView = z.reshape([1000]);
  assert.throws(() => addInPlace(dev, zView, z), /bound twice/);
  zView.dispose();
  const result = await dev.read(out) as Float32Array;
  for (const t of [a, b, out, z]) t.dispose();
  return result;
}

Deno.test(
  "webgpu and meta: same peak, same breakdown, same alloc/free sequence",
  gpuTest,
  async () => {
    const gpu = await testDevice();
    gpu.allocator.resetPeak();
    const gpuBase = gpu.allocator.stats();
    const result = await program(gpu);
    assert.deepEqual([...result], [13, 14, 15, 16, 17, 18, 19]);
    const gpuEvents = gpu.allocator.stopTimeline();
    const gpuStats = gpu.allocator.stats();

    const meta = new MetaDevice();
    const metaResult = await program(meta);
    assert.ok(metaResult.every(Number.isNaN), "meta reads are NaN");
    const metaEvents = meta.allocator.stopTimeline();
    const metaStats = meta.allocator.stats();

    assert.equal(gpuStats.peakBytes - gpuBase.liveBytes, metaStats.peakBytes);
    assert.deepEqual(gpuStats.peakBreakdown, metaStats.peakBreakdown);
    const shape = (e: typeof gpuEvents) => e.map((x) => [x.kind, x.name, x.tag, x.bytes, x.phase]);
    assert.ok(gpuEvents.length >= 8);
    assert.deepEqual(shape(gpuEvents), shape(metaEvents));
  },
);

Deno.test(
  "a broken WGSL source gives a readable compile error with the line",
  gpuTest,
  async () => {
    const gpu = await testDevice();
    const src = [
      "@group(0) @binding(0) var<storage, read_write> x: array<f32>;",
      "@compute @workgroup_size(1)",
      "fn main() {",
      "  let y: f32 = 1u;",
      "  x[0] = y;",
      "}",
    ].join("\n");
    await assert.rejects(() => gpu.compile("broken", src), (e: unknown) => {
      assert.ok(e instanceof WGSLCompileError);
      assert.match(e.message, /kernel "broken" does not compile/);
      assert.match(e.message, /line 4/);
      assert.match(e.message, />\s+4 \|\s+let y: f32 = 1u;/);
      return true;
    });
  },
);

Deno.test("a dispatch of a broken kernel surfaces at the next read", gpuTest, async () => {
  const gpu = await testDevice();
  const x = gpu.zeros([4], { tag: "workspace" });
  gpu.dispatch({
    kernel: "broken_inline",
    source: "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n" +
      "@compute @workgroup_size(1) fn main() { x[0] = undefined_thing; }",
    bindings: [x],
    workgroups: [1],
  });
  await assert.rejects(() => gpu.read(x), /does not compile|undefined_thing|WebGPU error/);
  x.dispose();
});

Deno.test("workgroup counts beyond the device limit are rejected clearly", gpuTest, async () => {
  const gpu = await testDevice();
  const x = gpu.zeros([4], { tag: "workspace" });
  assert.throws(
    () =>
      gpu.dispatch({
        kernel: "add_inplace",
        bindings: [x, x],
        params: new Params().u32(4).f32(1),
        workgroups: [70000],
      }),
    /workgroup count 70000 is outside/,
  );
  x.dispose();
});

Deno.test("a destroyed device fails clearly instead of hanging", gpuTest, async () => {
  const { WebGPUDevice } = await import("../lib/device/webgpu.ts");
  const dev = await WebGPUDevice.create();
  const x = dev.zeros([4], { tag: "workspace" });
  dev.destroy();
  await assert.rejects(() => dev.read(x), /destroyed/);
  assert.throws(() => dev.zeros([4], { tag: "workspace" }), /destroyed/);
});

Deno.test("meta devices can mirror a WebGPU device's binding limit", () => {
  const dev = new MetaDevice({ limits: { maxStorageBufferBindingSize: 1024 } });
  const big = dev.tensor([512], { tag: "activations", name: "big" });
  assert.throws(
    () => dev.dispatch({ kernel: "add_inplace", bindings: [big], workgroups: [1] }),
    /above the device's maxStorageBufferBindingSize 1024/,
  );
  big.dispose();
});

Deno.test(
  "texture staging: a tensor read back through textureLoad, accounted as workspace",
  gpuTest,
  async () => {
    const gpu = await testDevice();
    const n = 4096 * 2 + 12; // two full texture rows and 3 texels
    const data = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 7);
    const run = async (dev: Device) => {
      const src = dev.upload(data, [n], { tag: "activations", name: "src" });
      const out = dev.tensor([n], { tag: "activations", name: "out" });
      const before = dev.allocator.liveBytes;
      const tex = dev.texture(src);
      assert.equal(dev.allocator.liveBytes - before, 3 * 4096 * 4);
      assert.equal(dev.allocator.stats().liveByTag.workspace, 3 * 4096 * 4);
      dev.dispatch({
        kernel: "texture_read_test",
        source: `
        @group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
        @group(2) @binding(0) var t: texture_2d<f32>;
        @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
          let i = g.x;
          if (i < arrayLength(&out)) { out[i] = textureLoad(t, vec2<u32>(i & 1023u, i >> 10u), 0); }
        }`,
        bindings: [out],
        textures: [tex],
        workgroups: [Math.ceil(n / 4 / 64)],
      });
      tex.dispose();
      assert.throws(
        () =>
          dev.dispatch({
            kernel: "x",
            source: "",
            bindings: [out],
            textures: [tex],
            workgroups: [1],
          }),
        /used after dispose/,
      );
      const got = await dev.read(out);
      src.dispose();
      out.dispose();
      return got;
    };
    assert.deepEqual([...await run(gpu)], [...data]);
    const meta = new MetaDevice();
    await run(meta);
    assert.equal(meta.allocator.liveBytes, 0);
    const odd = meta.tensor([3, 5], { tag: "activations", name: "odd" });
    assert.throws(() => meta.texture(odd), /multiple of 4 elements/);
    odd.dispose();
  },
);

Deno.test("params: bytes and content keys, a shared table keyed by identity", () => {
  const table = Float32Array.from([0.5, -1, 2, 3, 4]);
  const a = new Params().u32(7).i32(-2).f32(1.5).table(table);
  const bytes = new DataView(a.bytes());
  assert.equal(bytes.byteLength, 48); // 3 words padded to 4, then 5 table values padded to 8
  assert.deepEqual(
    [bytes.getUint32(0, true), bytes.getInt32(4, true), bytes.getFloat32(8, true)],
    [7, -2, 1.5],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((i) => bytes.getFloat32(16 + 4 * i, true)),
    [0.5, -1, 2, 3, 4, 0],
  );
  const same = new Params().u32(7).i32(-2).f32(1.5).table(table);
  assert.equal(same.contentKey(), a.contentKey());
  const copy = new Params().u32(7).i32(-2).f32(1.5).table(table.slice());
  assert.notEqual(copy.contentKey(), a.contentKey(), "another table object is another block");
  assert.notEqual(new Params().u32(8).i32(-2).f32(1.5).table(table).contentKey(), a.contentKey());
  assert.notEqual(new Params().u32(7).contentKey(), new Params().u32(7).u32(0).u32(1).contentKey());
  assert.throws(() => a.table(table), /table\(\) may be called once/);
  assert.throws(() => a.u32(1), /table must be the last field/);
  assert.equal(new Params().bytes().byteLength, 16);
});
