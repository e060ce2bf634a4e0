/** A whole tiny model: GPU loss and every parameter gradient against the f64 reference. */

import type { ModelConfig } from "../lib/config/model_config.ts";
import { getPreset } from "../lib/config/presets.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertMatchesReference, randomBatch, randomWeights } from "../lib/testing/model_check.ts";

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
    const batch = randomBatch(ODD.vocabSize, 37, 7, [3, 20]);
    await assertMatchesReference(dev, ODD, randomWeights(ODD, 1), [batch]);
  },
);

Deno.test(
  "the Hugging Face profile (memory emulation) computes the same loss and gradients",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const batch = randomBatch(ODD.vocabSize, 21, 8, [4]);
    await assertMatchesReference(dev, ODD, randomWeights(ODD, 2), [batch], { framework: "hf" });
    // its MsT wrappers (mini-s's chunked MLP and head) under recomputation too
    await assertMatchesReference(dev, ODD, randomWeights(ODD, 3), [batch], {
      framework: "hf",
      checkpoint: true,
      mst: { mlp: 3, head: 4 },
    });
  },
);
