/**
 * Training steps: no leaks across steps, meta = webgpu accounting (checkpoint offload
 * included), the model learns.
 */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import { getPreset } from "../lib/config/presets.ts";
import { type MemoryPolicy, POLICIES } from "../lib/techniques/policy.ts";
import { makeBatches } from "../lib/train/data_source.ts";
import { runSteps } from "../lib/train/run_steps.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";

const cfg = getPreset("llama3-tiny");

async function run(dev: Device, S: number, steps: number, policy: MemoryPolicy = {}) {
  const data = await makeBatches("repeat", cfg, S, 1);
  dev.allocator.startTimeline();
  // the driver throws on a leaked tensor (leaks: "throw" is the default)
  const r = await runSteps(dev, cfg, policy, data, { steps, init: { seed: 1 } });
  const events = dev.allocator.stopTimeline();
  return { results: r.steps, run: r, events };
}

Deno.test(
  "webgpu: no leaks across 10 steps, loss falls; meta reports the same peaks and events",
  gpuTest,
  async () => {
    const gpu = await testDevice();
    const base = gpu.allocator.liveBytes;
    const g = await run(gpu, 64, 10);
    assert.equal(gpu.allocator.liveBytes, base, "everything freed after dispose");
    assert.equal(g.run.leakedBytes, 0);
    const after = g.results.map((r) => r.liveBytes);
    for (let k = 1; k < after.length; k++) {
      assert.equal(
        after[k],
        after[0],
        `live bytes after step ${k + 1}`,
      );
    }
    const losses = g.results.map((r) => r.loss!);
    assert.ok(
      Math.abs(losses[0] - Math.log(cfg.vocabSize)) < 0.2,
      `first loss ${losses[0]} vs ln V`,
    );
    assert.ok(losses[9] < losses[0], `loss did not fall: ${losses}`);

    const meta = new MetaDevice();
    const m = await run(meta, 64, 10);
    assert.deepEqual(m.results.map((r) => r.peakBytes), g.results.map((r) => r.peakBytes));
    assert.deepEqual(m.results.map((r) => r.peakPhase), g.results.map((r) => r.peakPhase));
    assert.deepEqual(m.run.breakdown, g.run.breakdown);
    assert.deepEqual(m.run.phasePeaks, g.run.phasePeaks);
    const shape = (ev: typeof g.events) =>
      ev.map((e) => `${e.kind} ${e.name} ${e.tag} ${e.bytes} ${e.phase}`);
    assert.deepEqual(shape(m.events), shape(g.events));
  },
);

/** Most gradient bytes live at once during one training step. */
async function maxLiveGrads(optimizerInBackward: boolean): Promise<number> {
  const dev = new MetaDevice();
  const policy: MemoryPolicy = { optimizerInBackward };
  dev.allocator.startTimeline();
  await runSteps(dev, cfg, policy, await makeBatches("repeat", cfg, 256, 1), { steps: 1 });
  let live = 0;
  let max = 0;
  for (const e of dev.allocator.stopTimeline()) {
    if (e.tag !== "grads") continue;
    live += e.kind === "alloc" ? e.bytes : e.kind === "free" ? -e.bytes : 0;
    max = Math.max(max, live);
  }
  return max;
}

Deno.test("optimizer in backward frees each gradient as soon as it is complete", async () => {
  const all = await maxLiveGrads(false);
  const early = await maxLiveGrads(true);
  const embed = cfg.vocabSize * cfg.hidden * 4;
  assert.ok(all > 2 * embed, `standard: all gradients live together (${all})`);
  // At most the largest parameter's gradient plus one block's worth stays live.
  assert.ok(early < all / 2, `optimizer in backward keeps ${early} gradient bytes live vs ${all}`);
});

Deno.test(
  "checkpoint offload: meta = webgpu (peaks, host bytes, events); the checkpoints leave the device",
  gpuTest,
  async () => {
    const S = 96;
    const gpu = await testDevice();
    const g = await run(gpu, S, 3, POLICIES.mstOffload);
    const kept = await run(gpu, S, 3, POLICIES.mst);
    const m = await run(new MetaDevice(), S, 3, POLICIES.mstOffload);
    // exact: the host round trip changes no bit
    assert.deepEqual(g.run.losses, kept.run.losses);
    // the same accounting on both devices, host events and bytes included
    assert.deepEqual(m.results.map((r) => r.peakBytes), g.results.map((r) => r.peakBytes));
    assert.deepEqual(m.results.map((r) => r.hostPeakBytes), g.results.map((r) => r.hostPeakBytes));
    assert.deepEqual(m.run.breakdown, g.run.breakdown);
    assert.deepEqual(m.run.phasePeaks, g.run.phasePeaks);
    const shape = (ev: typeof g.events) =>
      ev.map((e) => `${e.kind} ${e.name} ${e.tag} ${e.bytes} ${e.phase} ${e.liveBytes}`);
    assert.deepEqual(shape(m.events), shape(g.events));
    // every block's (S, d) input went to the host, and came back one block at a time
    const ckpt = S * cfg.hidden * 4;
    assert.equal(g.run.hostPeakBytes, cfg.layers * ckpt);
    assert.equal(kept.run.hostPeakBytes, 0);
    const hostAllocs = g.events.filter((e) => e.tag === "host" && e.kind === "alloc");
    assert.equal(hostAllocs.length, 3 * cfg.layers);
    assert.ok(hostAllocs.every((e) => e.bytes === ckpt && e.phase === "forward"));
    assert.equal(g.run.breakdown.host, undefined, "host bytes are not device bytes");
    // checkpoint bytes on the device when backward starts: none with offload, L blocks' without
    const atBackward = (ev: typeof g.events) => {
      let live = 0;
      for (const e of ev.slice(0, ev.findIndex((e) => e.phase === "backward"))) {
        if (e.tag === "checkpoints") live += e.kind === "free" ? -e.bytes : e.bytes;
      }
      return live;
    };
    assert.equal(atBackward(g.events), 0);
    assert.equal(atBackward(kept.events), cfg.layers * ckpt);
    assert.ok(g.run.peakBytes < kept.run.peakBytes, `${g.run.peakBytes} vs ${kept.run.peakBytes}`);
  },
);

Deno.test(
  "selective recomputation: meta = webgpu (peaks, events), same losses as full recomputation",
  gpuTest,
  async () => {
    const S = 96;
    const policy: MemoryPolicy = { ...POLICIES.mst, keepAttention: true };
    const gpu = await testDevice();
    const g = await run(gpu, S, 3, policy);
    const full = await run(gpu, S, 3, POLICIES.mst);
    const m = await run(new MetaDevice(), S, 3, policy);
    assert.deepEqual(g.run.losses, full.run.losses, "bit for bit");
    assert.deepEqual(m.results.map((r) => r.peakBytes), g.results.map((r) => r.peakBytes));
    assert.deepEqual(m.run.breakdown, g.run.breakdown);
    assert.deepEqual(m.run.phasePeaks, g.run.phasePeaks);
    const shape = (ev: typeof g.events) =>
      ev.map((e) => `${e.kind} ${e.name} ${e.tag} ${e.bytes} ${e.phase} ${e.liveBytes}`);
    assert.deepEqual(shape(m.events), shape(g.events));
    assert.ok(g.run.peakBytes > full.run.peakBytes, "keeping attention costs memory");
  },
);
