/** A whole tiny model: GPU loss and every parameter gradient against the f64 reference. */

import assert from "node:assert/strict";
import type { ModelConfig } from "../lib/models/config.ts";
import { getPreset } from "../lib/models/presets.ts";
import { assertAllClose } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import {
  deviceLossAndGrads,
  randomBatch,
  randomWeights,
  referenceLossAndGrads,
} from "../lib/testing/model_check.ts";

/** Awkward shapes: nothing is a multiple of a workgroup size; 3 heads share 1 kv head. */
export const ODD: ModelConfig = {
  ...getPreset("llama3-tiny"),
  name: "odd-llama",
  vocabSize: 53,
  hidden: 24,
  intermediate: 40,
  layers: 2,
  heads: 3,
  kvHeads: 1,
  headDim: 8,
  attnScale: 8 ** -0.5,
};

Deno.test(
  "whole model: loss and all gradients match the f64 reference (S=37, 3 heads / 1 kv)",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const weights = randomWeights(ODD, 1);
    const batch = randomBatch(ODD.vocabSize, 37, 7, [3, 20]);
    const marker = dev.allocator.nextId;
    const got = await deviceLossAndGrads(dev, ODD, weights, [batch]);
    const want = referenceLossAndGrads(ODD, weights, [batch]);
    assert.ok(
      Math.abs(got.loss - want.loss) <= 1e-4 * Math.abs(want.loss),
      `loss ${got.loss} vs ${want.loss}`,
    );
    for (const [name, g] of want.grads) {
      assertAllClose(got.grads.get(name)!, g, { atol: 2e-5, rtol: 2e-3 }, name);
    }
    got.model.dispose();
    dev.allocator.assertNoLeaksSince(marker);
  },
);

Deno.test(
  "the transformers-style head (memory emulation) computes the same loss and gradients",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const weights = randomWeights(ODD, 2);
    const batch = randomBatch(ODD.vocabSize, 21, 8, [4]);
    const marker = dev.allocator.nextId;
    const got = await deviceLossAndGrads(dev, ODD, weights, [batch], { head: "hf" });
    got.model.dispose();
    dev.allocator.assertNoLeaksSince(marker);
    const want = referenceLossAndGrads(ODD, weights, [batch]);
    assert.ok(
      Math.abs(got.loss - want.loss) <= 1e-4 * Math.abs(want.loss),
      `loss ${got.loss} vs ${want.loss}`,
    );
    for (const [name, g] of want.grads) {
      assertAllClose(got.grads.get(name)!, g, { atol: 2e-5, rtol: 2e-3 }, name);
    }
  },
);
