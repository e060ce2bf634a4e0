/** A saved-and-resumed run continues exactly like the uninterrupted run. */

import assert from "node:assert/strict";
import { WindowStream } from "../lib/data/batches.ts";
import { Model } from "../lib/models/model.ts";
import { getPreset } from "../lib/config/presets.ts";
import { loadRun, saveRun } from "../lib/train/run_io.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { rng } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice, testDeviceF16 } from "../lib/testing/gpu.ts";

const cfg = { ...getPreset("llama3-tiny"), vocabSize: 300 };
const r = rng(5);
const tokens = Int32Array.from({ length: 4000 }, () => Math.floor(r() * cfg.vocabSize));

function stream() {
  return new WindowStream(tokens, { seqLen: 48, seed: 3 });
}

Deno.test(
  "save after 3 steps, resume, step 4 loss equals the uninterrupted run's",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const base = dev.allocator.liveBytes;
    // Uninterrupted: 5 steps.
    const model = Model.build(dev, cfg, {}, { seed: 9 });
    const trainer = new Trainer(dev, model);
    const s1 = stream();
    const straight: number[] = [];
    const dir = await Deno.makeTempDir();
    for (let i = 0; i < 5; i++) {
      const w = s1.next();
      straight.push((await trainer.step({ ids: w.inputs, targets: w.targets })).loss);
      if (i === 2) await saveRun(dir, trainer, s1.state() as never, { note: "test" });
    }
    model.dispose();

    // Resumed from step 3 (with MsT and recomputation, which must not change the numbers).
    const loaded = await loadRun(dev, dir, { checkpoint: true, mst: { mlp: 2, head: 3 } });
    assert.equal(loaded.step, 3);
    const t2 = new Trainer(dev, loaded.model);
    assert.equal(loaded.restoreOptimizer(t2), "none"); // f32 → f32: no loss scaler either side
    const s2 = stream();
    s2.restore(loaded.data as never);
    const resumed: number[] = [];
    for (let i = 0; i < 2; i++) {
      const w = s2.next();
      resumed.push((await t2.step({ ids: w.inputs, targets: w.targets })).loss);
    }
    loaded.model.dispose();
    // f32 → f16: the mixed-precision trainer's scaler starts at its initial scale
    const dev16 = await testDeviceF16();
    const as16 = await loadRun(dev16, dir, { dtype: "f16" });
    const t16 = new Trainer(dev16, as16.model);
    assert.equal(as16.restoreOptimizer(t16), "reset");
    assert.equal(t16.scaler!.scale, 2 ** 16);
    as16.model.dispose();
    await Deno.remove(dir, { recursive: true });
    assert.ok(
      Math.abs(resumed[0] - straight[3]) <= 1e-6 * straight[3],
      `${resumed[0]} vs ${straight[3]}`,
    );
    assert.ok(
      Math.abs(resumed[1] - straight[4]) <= 1e-5 * straight[4],
      `${resumed[1]} vs ${straight[4]}`,
    );
    assert.equal(dev.allocator.liveBytes, base);
  },
);
