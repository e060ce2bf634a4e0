/**
 * The step driver: one definition of tokens/s (median step time after the warm-up), null
 * figures on the meta device, the M actually run, and leak checks.
 */

import assert from "node:assert/strict";
import { LeakError } from "../lib/device/errors.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import type { ModelConfig } from "../lib/config/model_config.ts";
import type { Batch } from "../lib/models/model.ts";
import { Model } from "../lib/models/model.ts";
import { POLICIES } from "../lib/techniques/policy.ts";
import { getPreset } from "../lib/config/presets.ts";
import { median, runSteps } from "../lib/train/run_steps.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { randomBatch } from "../lib/testing/model_check.ts";

const tiny = getPreset("llama3-tiny"); // d=64, V=2048

const SMALL: ModelConfig = {
  ...tiny,
  name: "driver-small",
  vocabSize: 97,
  hidden: 32,
  intermediate: 56,
  layers: 1,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  attnScale: 8 ** -0.5,
};

function batch(S: number, V = tiny.vocabSize): Batch {
  const ids = Int32Array.from({ length: S }, (_, i) => (i * 31) % V);
  return { ids, targets: ids };
}

/** A clock whose step durations (ms) are scripted: each step reads it twice. */
function scriptedClock(durations: number[]): () => number {
  const stamps = [0];
  for (const d of durations) stamps.push(stamps.at(-1)! + 1000, stamps.at(-1)! + 1000 + d);
  let i = 1;
  return () => stamps[i++];
}

Deno.test("meta device: losses, tokens/s and the timing spread are null; peaks are real", async () => {
  const dev = new MetaDevice();
  const r = await runSteps(dev, tiny, POLICIES.mst, batch(512), { steps: 3 });
  assert.deepEqual(r.losses, [null, null, null]);
  assert.ok(r.steps.every((s) => s.loss === null));
  assert.equal(r.tokensPerSec, null);
  assert.equal(r.timing, null);
  assert.equal(r.policy, "MsT + recomputation");
  assert.equal(r.device, "meta");
  assert.ok(r.peakBytes > 0);
  // phase peaks: the largest is the step peak, in the phase named by peakPhase
  assert.equal(Math.max(...Object.values(r.phasePeaks)), r.peakBytes);
  assert.equal(r.phasePeaks[r.peakPhase], r.peakBytes);
  for (const p of ["forward", "backward", "optimizer"]) assert.ok(p in r.phasePeaks, p);
  const sum = Object.values(r.breakdown).reduce((a, b) => a + b, 0);
  assert.equal(sum, r.peakBytes);
  assert.equal(r.largestTag, Object.entries(r.breakdown).sort((a, b) => b[1] - a[1])[0][0]);
  assert.equal(r.leakedBytes, 0);
  assert.equal(dev.allocator.liveBytes, 0, "the driver frees the model it built");
});

Deno.test(
  "tokens/s = S / the median time of the steps after the warm-up, with min/median/max",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const S = 16;
    const b = randomBatch(SMALL.vocabSize, S, 3);
    const durations = [100, 10, 30, 20, 50];
    const r = await runSteps(dev, SMALL, {}, b, { steps: 5, clock: scriptedClock(durations) });
    assert.deepEqual(r.steps.map((s) => s.ms), durations);
    assert.deepEqual(r.steps.map((s) => s.warmup), [true, false, false, false, false]);
    assert.deepEqual(r.timing, {
      warmupSteps: 1,
      timedSteps: 4,
      minMs: 10,
      medianMs: 25,
      maxMs: 50,
    });
    assert.equal(r.tokensPerSec, S / 0.025);
    // the same definition from the reported step times
    const timed = r.steps.filter((s) => !s.warmup).map((s) => s.ms);
    assert.equal(r.tokensPerSec, S / (median(timed) / 1000));
    assert.ok(r.losses.every((l) => typeof l === "number" && Number.isFinite(l)));

    const w2 = await runSteps(dev, SMALL, {}, b, {
      steps: 5,
      warmup: 2,
      clock: scriptedClock(durations),
    });
    assert.equal(w2.timing!.medianMs, 30);
    assert.equal(w2.tokensPerSec, S / 0.03);
    // a single step is all warm-up: no tokens/s rather than a warm-up figure
    const one = await runSteps(dev, SMALL, {}, b, { steps: 1 });
    assert.equal(one.tokensPerSec, null);
    assert.equal(one.timing, null);
  },
);

Deno.test("the M actually run: capped at S with a warning, auto resolved", async () => {
  const dev = new MetaDevice();
  const warnings: string[] = [];
  const r = await runSteps(dev, tiny, { mst: { mlp: 5000, head: 3 } }, batch(256), {
    steps: 2,
    onWarning: (w) => warnings.push(w),
  });
  assert.deepEqual(r.chunks, { mlp: 256, head: 3 });
  assert.equal(warnings.length, 1, "warned once, not per step");
  assert.match(warnings[0], /mst\.mlp: M=5000 is more than S=256 rows; 256 chunks of one row/);
  assert.deepEqual(r.warnings, warnings);

  // auto at S=1024 on llama3-tiny: 256-row chunks for both parts
  const auto = await runSteps(dev, tiny, POLICIES.mst, batch(1024), { steps: 1 });
  assert.deepEqual(auto.chunks, { mlp: 4, head: 4 });
  assert.deepEqual(auto.warnings, []);
  const std = await runSteps(dev, tiny, POLICIES.standard, batch(64), { steps: 1 });
  assert.deepEqual(std.chunks, { mlp: null, head: null });
});

/** A trainer that forgets a tensor in every step. */
class LeakyTrainer extends Trainer {
  override async step(b: Batch | Batch[]) {
    const r = await super.step(b);
    this.dev.tensor([10], { tag: "activations", name: "stray" });
    return r;
  }
}

Deno.test("a tensor left live by a step is a leak: thrown, or reported", async () => {
  const dev = new MetaDevice();
  const model = Model.build(dev, tiny, {});
  await assert.rejects(
    () => runSteps(dev, tiny, {}, batch(64), { steps: 2, trainer: new LeakyTrainer(dev, model) }),
    (e) => e instanceof LeakError && /stray/.test(e.message),
  );
  const r = await runSteps(dev, tiny, {}, batch(64), {
    steps: 3,
    trainer: new LeakyTrainer(dev, model),
    leaks: "report",
  });
  assert.deepEqual(r.steps.map((s) => s.leakedBytes), [40, 40, 40]);
  // a trainer for another policy is refused
  await assert.rejects(
    () => runSteps(dev, tiny, POLICIES.mst, batch(64), { trainer: new Trainer(dev, model) }),
    /under "standard", not llama3-tiny under "MsT \+ recomputation"/,
  );
});
