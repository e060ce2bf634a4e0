/**
 * Mixed-precision (f16) training: the meta device counts exactly what WebGPU f16 allocates
 * (events, peaks, breakdown) for standard and MsT + recomputation steps; the loss falls; dynamic
 * loss scaling skips an overflowing step (no update, gradients freed, scale halved) and grows the
 * scale after clean steps; MsT matches the standard step in f16; f16 checkpoints (f32 masters and
 * moments) resume exactly in f16 and within f16 tolerance in f32; checkpoint offload in f16
 * brings the checkpoints back exactly.
 */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import { Model } from "../lib/models/model.ts";
import type { MemoryPolicy } from "../lib/techniques/policy.ts";
import { getPreset } from "../lib/config/presets.ts";
import { makeBatches } from "../lib/train/data_source.ts";
import { LossScaler } from "../lib/optim/loss_scaler.ts";
import { runSteps } from "../lib/train/run_steps.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { gpuTest, testDevice, testDeviceF16 } from "../lib/testing/gpu.ts";
import { rng } from "../lib/testing/all_close.ts";
import { WindowStream } from "../lib/data/batches.ts";
import { loadRun, saveRun } from "../lib/train/run_io.ts";
import { loadCheckpoint } from "../lib/checkpoint/checkpoint_dir.ts";

const cfg = getPreset("llama3-tiny");

async function run(dev: Device, policy: MemoryPolicy, S: number, steps: number) {
  const data = await makeBatches("repeat", cfg, S, 1);
  dev.allocator.startTimeline();
  const r = await runSteps(dev, cfg, policy, data, { steps, init: { seed: 1 } });
  const events = dev.allocator.stopTimeline();
  return { run: r, events };
}

const POLICIES: [string, MemoryPolicy][] = [
  ["standard", { dtype: "f16" }],
  ["MsT + recomputation", { dtype: "f16", checkpoint: true, mst: { mlp: 2, head: 2 } }],
];
for (const [name, policy] of POLICIES) {
  Deno.test(
    `f16 ${name}: meta f16 reports the same events and peaks as WebGPU f16; the loss falls`,
    gpuTest,
    async () => {
      const gpu = await testDeviceF16();
      const g = await run(gpu, policy, 64, 4);
      assert.equal(g.run.leakedBytes, 0);
      const after = g.run.steps.map((r) => r.liveBytes);
      assert.ok(after.every((b) => b === after[0]), `live bytes after steps: ${after}`);
      const losses = g.run.losses as number[];
      assert.ok(Math.abs(losses[0] - Math.log(cfg.vocabSize)) < 0.2, `first loss ${losses[0]}`);
      assert.ok(losses[3] < losses[0], `loss did not fall: ${losses}`);
      assert.deepEqual(g.run.skippedSteps, []);
      // f16 storage: the working weights are 2 bytes per parameter, masters and moments 4.
      assert.ok(g.run.breakdown.optimizer > 0);
      const m = await run(new MetaDevice({ floats: "f16" }), policy, 64, 4);
      assert.deepEqual(m.run.steps.map((r) => r.peakBytes), g.run.steps.map((r) => r.peakBytes));
      assert.deepEqual(m.run.breakdown, g.run.breakdown);
      assert.deepEqual(m.run.phasePeaks, g.run.phasePeaks);
      const shape = (ev: typeof g.events) =>
        ev.map((e) => `${e.kind} ${e.name} ${e.tag} ${e.bytes} ${e.phase}`);
      assert.deepEqual(shape(m.events), shape(g.events));
    },
  );
}

Deno.test(
  "loss scaling: an overflowing f16 step is skipped, the scale halves",
  gpuTest,
  async () => {
    const dev = await testDeviceF16();
    const model = Model.build(dev, cfg, { dtype: "f16" }, { seed: 3 });
    // 2^24 / 64 targets: logit gradients of ~2.6e5 overflow f16 (max 65504).
    const trainer = new Trainer(dev, model, { lossScaler: { initScale: 2 ** 24 } });
    const data = await makeBatches("repeat", cfg, 64, 1);
    const w = model.param("model.layers.0.mlp.down_proj.weight");
    const before = await dev.readF32(w.master!);
    const base = dev.allocator.liveBytes;
    const r = await trainer.step(data.next());
    assert.equal(r.skipped, true);
    assert.equal(r.lossScale, 2 ** 24);
    assert.equal(trainer.scaler!.scale, 2 ** 23);
    assert.equal(trainer.scaler!.skippedSteps, 1);
    assert.ok(Number.isFinite(r.loss), `the loss itself is finite: ${r.loss}`);
    assert.deepEqual(await dev.readF32(w.master!), before, "a skipped step leaves the weights");
    assert.equal(w.m, null, "no AdamW state from a skipped step");
    assert.ok(model.params.every((p) => p.grad === null), "gradients freed");
    assert.equal(dev.allocator.liveBytes, base);
    // Halving until the gradients fit: a later step updates.
    let k = 0;
    while ((await trainer.step(data.next())).skipped) assert.ok(++k < 12, "never stopped skipping");
    assert.notDeepEqual(await dev.readF32(w.master!), before);
    assert.ok(trainer.scaler!.scale < 2 ** 23);
    model.dispose();
  },
);

Deno.test("loss scaler: doubles after growthInterval clean steps, halves on inf/NaN", () => {
  const s = new LossScaler({ initScale: 1024, growthInterval: 2 });
  assert.deepEqual(s.update(1), { skipped: false, scaleUsed: 1024, scale: 1024 });
  assert.deepEqual(s.update(1), { skipped: false, scaleUsed: 1024, scale: 2048 });
  assert.deepEqual(s.update(Infinity), { skipped: true, scaleUsed: 2048, scale: 1024 });
  assert.deepEqual(s.update(NaN), { skipped: true, scaleUsed: 1024, scale: 512 });
  assert.deepEqual(s.update(NaN, true), { skipped: false, scaleUsed: 512, scale: 512 });
  assert.throws(() => new LossScaler({ initScale: 1000 }), /power of two/);
});

Deno.test("f16 policies: optimizer-in-backward and the HF head are refused with reasons", () => {
  const dev = new MetaDevice({ floats: "f16" });
  assert.throws(
    () => Model.build(dev, cfg, { dtype: "f16", optimizerInBackward: true }),
    /optimizerInBackward cannot run in mixed precision/,
  );
  assert.throws(() => Model.build(dev, cfg, { dtype: "f16", framework: "hf" }), /framework "hf"/);
});

Deno.test(
  "f16: MsT + recomputation gives the standard step's losses within f16 tolerance",
  gpuTest,
  async () => {
    const gpu = await testDeviceF16();
    const losses = async (policy: MemoryPolicy) =>
      (await run(gpu, policy, 96, 4)).run.losses as number[];
    const std = await losses(POLICIES[0][1]);
    const mst = await losses(POLICIES[1][1]);
    // Chunked f16 sums round differently; a few f16 ulps of the loss (2^-11 relative each).
    std.forEach((l, i) => {
      assert.ok(Math.abs(mst[i] - l) <= 4e-3 * l, `step ${i + 1}: MsT ${mst[i]} vs standard ${l}`);
    });
  },
);

Deno.test(
  "f16 checkpoints hold f32 masters and moments: resume in f16 exact, in f32 within f16 tolerance",
  gpuTest,
  async () => {
    const dev = await testDeviceF16();
    const small = { ...cfg, vocabSize: 300 };
    const r = rng(5);
    const tokens = Int32Array.from({ length: 4000 }, () => Math.floor(r() * small.vocabSize));
    const stream = () => new WindowStream(tokens, { seqLen: 48, seed: 3 });
    const model = Model.build(dev, small, { dtype: "f16" }, { seed: 9 });
    // a scale that grows every 2 clean steps, so the saved scaler state differs from a new one
    const lossScaler = { initScale: 2 ** 10, growthInterval: 2 };
    const trainer = new Trainer(dev, model, { lossScaler });
    const s1 = stream();
    const straight: number[] = [];
    const dir = await Deno.makeTempDir();
    let savedScaler = { scale: 0, cleanSteps: 0 };
    for (let i = 0; i < 5; i++) {
      const w = s1.next();
      straight.push((await trainer.step({ ids: w.inputs, targets: w.targets })).loss);
      if (i === 2) {
        await saveRun(dir, trainer, s1.state() as never);
        savedScaler = { scale: trainer.scaler!.scale, cleanSteps: trainer.scaler!.cleanSteps };
      }
    }
    assert.deepEqual(savedScaler, { scale: 2 ** 11, cleanSteps: 1 });
    const masters = await model.readWeights();
    model.dispose();
    const state = await loadCheckpoint(dir);
    for (const [name, t] of state.model) {
      assert.ok(t.data instanceof Float32Array, `${name} saved as f32`);
    }
    const resume = async (d: Device) => {
      const loaded = await loadRun(d, dir, d.floatType === "f16" ? { dtype: "f16" } : {});
      const t2 = new Trainer(d, loaded.model, { lossScaler });
      const scaler = loaded.restoreOptimizer(t2);
      assert.equal(scaler, d.floatType === "f16" ? "restored" : "dropped");
      if (t2.scaler) {
        assert.deepEqual({ scale: t2.scaler.scale, cleanSteps: t2.scaler.cleanSteps }, savedScaler);
      }
      const s2 = stream();
      s2.restore(loaded.data as never);
      const out: number[] = [];
      for (let i = 0; i < 2; i++) {
        const w = s2.next();
        out.push((await t2.step({ ids: w.inputs, targets: w.targets })).loss);
      }
      const weights = await loaded.model.readWeights();
      loaded.model.dispose();
      return { out, weights };
    };
    const same = await resume(dev);
    assert.deepEqual(same.out, straight.slice(3), "f16 → f16 resume is exact");
    assert.deepEqual(
      same.weights.get("lm_head.weight")!.data,
      masters.get("lm_head.weight")!.data,
      "master weights after the same steps",
    );
    const f32 = await resume(await testDevice());
    f32.out.forEach((l, i) => {
      const want = straight[3 + i];
      assert.ok(Math.abs(l - want) <= 5e-3 * want, `f32 resume step ${4 + i}: ${l} vs ${want}`);
    });
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "f16 with checkpoint offload: the same losses as on-device checkpoints, f16 bytes on the host, meta counts the same",
  gpuTest,
  async () => {
    const policy: MemoryPolicy = { dtype: "f16", checkpoint: true, mst: { mlp: 2, head: 2 } };
    const gpu = await testDeviceF16();
    const kept = await run(gpu, policy, 64, 3);
    const off = await run(gpu, { ...policy, offload: true }, 64, 3);
    // the f16 checkpoints come back bit for bit (f16 widened to f32 on the host and narrowed back)
    assert.deepEqual(off.run.losses, kept.run.losses);
    assert.equal(off.run.leakedBytes, 0);
    // every block's input (S, d), in f16, held on the host at the end of the forward
    assert.equal(off.run.hostPeakBytes, cfg.layers * 64 * cfg.hidden * 2);
    const m = await run(new MetaDevice({ floats: "f16" }), { ...policy, offload: true }, 64, 3);
    assert.equal(m.run.hostPeakBytes, off.run.hostPeakBytes);
    assert.deepEqual(m.run.breakdown, off.run.breakdown);
  },
);
