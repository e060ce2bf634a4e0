/**
 * Each family's distinctive features, on its tiny preset: the GPU loss and every parameter
 * gradient match the f64 reference model (autograd). S=40 exceeds the tiny sliding windows
 * (32), so Mistral's window and Gemma-2's alternating window are exercised.
 */

import assert from "node:assert/strict";
import { getPreset, PRESET_NAMES } from "../lib/config/presets.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertMatchesReference, randomBatch, randomWeights } from "../lib/testing/model_check.ts";

const TINY = PRESET_NAMES.filter((n) => n.endsWith("-tiny"));

Deno.test("there is a tiny preset for each of the five families", () => {
  assert.deepEqual(
    TINY.map((n) => getPreset(n).family).sort(),
    ["gemma2", "llama2", "llama3", "mistral", "qwen2"],
  );
});

for (const name of TINY) {
  Deno.test(`${name}: loss and all gradients match the f64 reference`, gpuTest, async () => {
    const cfg = getPreset(name);
    // Gemma-2's soft-caps only matter when logits are large: use small caps here.
    if (cfg.family === "gemma2") Object.assign(cfg, { attnSoftcap: 2, finalSoftcap: 1.5 });
    const dev = await testDevice();
    const batch = randomBatch(cfg.vocabSize, 40, 3, [5]);
    await assertMatchesReference(dev, cfg, randomWeights(cfg, 11, 0.15), [batch], {}, {
      atol: 1e-4,
      rtol: 2e-3,
      relativeAtol: true,
    });
  });
}
