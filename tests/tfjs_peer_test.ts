/**
 * The TF.js benchmark peer computes the same model as ours: loss and every gradient against
 * the f64 reference model, one AdamW step against the f64 AdamW reference, and rejection of
 * unsupported configs.
 */

import assert from "node:assert/strict";
import { createTfjsPeer, TfjsLlama } from "../lib/bench/tfjs_llama.ts";
import type { ModelConfig } from "../lib/config/model_config.ts";
import { getPreset } from "../lib/config/presets.ts";
import { adamwRef } from "../lib/reference/adamw.ts";
import { parameterShapes } from "../lib/config/derived.ts";
import { referenceLoss, type RefParams } from "../lib/reference/model.ts";
import { assertAllClose, randomArray, rng } from "../lib/testing/all_close.ts";

/** Tiny awkward config: 3 query heads share 1 kv head; nothing is a power of two. */
const SMALL: ModelConfig = {
  ...getPreset("llama3-tiny"),
  name: "tfjs-small",
  vocabSize: 53,
  hidden: 24,
  intermediate: 40,
  layers: 1,
  heads: 3,
  kvHeads: 1,
  headDim: 8,
  attnScale: 8 ** -0.5,
};

/** Two layers with GQA ratio 2 and two kv heads (as llama3-tiny). */
const SMALL_GQA2: ModelConfig = {
  ...SMALL,
  name: "tfjs-small-gqa2",
  hidden: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
};

const opts = { sanitizeResources: false, sanitizeOps: false } as const;

/** Uniform ±0.2 matrices, norm weights 1 ± 0.1 (f64, for the reference). */
function randomWeights(cfg: ModelConfig, seed: number): RefParams {
  const out: RefParams = new Map();
  let s = seed;
  for (const { name, shape } of parameterShapes(cfg)) {
    const data = randomArray(shape.reduce((a, b) => a * b, 1), s++, 0.2);
    out.set(name, { shape, data: shape.length === 1 ? data.map((x) => 1 + 0.5 * x) : data });
  }
  return out;
}

/** S random ids and targets in [0, V), with the `ignored` target positions set to −100. */
function randomBatch(V: number, S: number, seed: number, ignored: number[] = []) {
  const r = rng(seed);
  const ids = Int32Array.from({ length: S }, () => Math.floor(r() * V));
  const targets = Int32Array.from({ length: S }, () => Math.floor(r() * V));
  for (const i of ignored) targets[i] = -100;
  return { ids, targets };
}

function toF32(w: RefParams): Map<string, Float32Array> {
  return new Map([...w].map(([k, v]) => [k, Float32Array.from(v.data)]));
}

for (const cfg of [SMALL, SMALL_GQA2]) {
  Deno.test(
    `tfjs peer (${cfg.name}): loss and all gradients match the f64 reference`,
    opts,
    async () => {
      const tf = await createTfjsPeer();
      const weights = randomWeights(cfg, 3);
      const batch = randomBatch(cfg.vocabSize, 16, 5, [2, 11]);
      const before = tf.memory().numTensors;
      const model = TfjsLlama.create(tf, cfg, toF32(weights));
      try {
        const got = await model.lossAndGrads(batch.ids, batch.targets);
        const want = referenceLoss(cfg, weights, batch.ids, batch.targets);
        assert.ok(
          Math.abs(got.loss - want.loss) <= 1e-4 * Math.abs(want.loss),
          `loss ${got.loss} vs ${want.loss}`,
        );
        assert.equal(got.grads.size, want.grads.size);
        for (const [name, g] of want.grads) {
          assertAllClose(got.grads.get(name)!, g, { atol: 2e-5, rtol: 1e-3 }, name);
        }
      } finally {
        model.dispose();
      }
      assert.equal(tf.memory().numTensors, before, "tensors leaked");
    },
  );
}

Deno.test("tfjs peer: one trainStep equals reference gradients + clipped AdamW", opts, async () => {
  const tf = await createTfjsPeer();
  const cfg = SMALL;
  const weights = randomWeights(cfg, 9);
  const batch = randomBatch(cfg.vocabSize, 16, 4);
  const lr = 0.01;
  const model = TfjsLlama.create(tf, cfg, toF32(weights));
  try {
    const loss = await model.trainStep(batch.ids, batch.targets, lr);
    const after = await model.parameters();
    const want = referenceLoss(cfg, weights, batch.ids, batch.targets);
    assert.ok(Math.abs(loss - want.loss) <= 1e-4 * want.loss, `loss ${loss} vs ${want.loss}`);
    let normSq = 0;
    for (const g of want.grads.values()) for (const x of g) normSq += x * x;
    // Random weights with std 0.2 give a gradient norm above 1, so the clip is exercised.
    assert.ok(Math.sqrt(normSq) > 1, `gradient norm ${Math.sqrt(normSq)} does not clip`);
    for (const [name, p] of weights) {
      const ref = p.data.slice();
      const zeros = () => new Float64Array(ref.length);
      adamwRef(ref, want.grads.get(name)!, zeros(), zeros(), {
        lr,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weightDecay: p.shape.length >= 2 ? 0.1 : 0,
        step: 1,
        clip: { normSq, maxNorm: 1 },
      });
      // Step 1 moves each weight by ≈ lr·sign(g): compare with an atol well below lr.
      assertAllClose(after.get(name)!, ref, { atol: 1e-3 * lr, rtol: 1e-5 }, name);
    }
    assert.ok(model.memory().numBytes > 0);
  } finally {
    model.dispose();
  }
});

Deno.test("tfjs peer: rejects unsupported configs and bad weights clearly", opts, async () => {
  const tf = await createTfjsPeer();
  assert.throws(
    () => TfjsLlama.create(tf, getPreset("gemma2-tiny"), new Map()),
    /does not implement: .*tieEmbeddings/,
  );
  assert.throws(
    () => TfjsLlama.create(tf, { ...SMALL, qkvBias: true }, new Map()),
    /does not implement: qkvBias/,
  );
  assert.throws(() => TfjsLlama.create(tf, SMALL, new Map()), /missing weight "model\.embed/);
});
