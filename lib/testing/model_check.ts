/**
 * Whole-model checks shared by tests: build a model on the GPU from given f64 weights, run
 * forward + backward, and compare the loss and every gradient with the f64 reference model.
 */

import type { Device } from "../device/device.ts";
import type { ModelConfig } from "../config/model_config.ts";
import { parameterShapes } from "../config/derived.ts";
import { type Batch, Model } from "../models/model.ts";
import type { MemoryPolicy } from "../techniques/policy.ts";
import { referenceLoss, type RefParams } from "../reference/model.ts";
import { assertAllClose, randomArray, rng } from "./all_close.ts";

/** Random f64 weights for every parameter of `cfg` (norm weights near their identity). */
export function randomWeights(cfg: ModelConfig, seed: number, std = 0.2): RefParams {
  const out: RefParams = new Map();
  let s = seed;
  for (const { name, shape } of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    let data = randomArray(n, s++, std);
    if (name.endsWith("norm.weight")) {
      data = data.map((x) => (cfg.normUnitOffset ? 0 : 1) + 0.5 * x);
    }
    out.set(name, { shape, data });
  }
  return out;
}

/** A batch of S random ids and targets in [0, V), with `ignored` positions set to −100. */
export function randomBatch(V: number, S: number, seed: number, ignored: number[] = []): Batch {
  const r = rng(seed);
  const ids = Int32Array.from({ length: S }, () => Math.floor(r() * V));
  const targets = Int32Array.from({ length: S }, () => Math.floor(r() * V));
  for (const i of ignored) targets[i] = -100;
  return { ids, targets };
}

/** Loss and gradients from the device path. */
export async function deviceLossAndGrads(
  dev: Device,
  cfg: ModelConfig,
  weights: RefParams,
  batches: Batch[],
  policy: MemoryPolicy = {},
): Promise<{ loss: number; grads: Map<string, Float32Array>; model: Model }> {
  const w32 = new Map([...weights].map(([k, v]) => [k, Float32Array.from(v.data)]));
  const model = Model.build(dev, cfg, policy, { weights: w32 });
  let denominator = 0;
  for (const b of batches) for (const t of b.targets) if (t !== -100) denominator++;
  let loss = 0;
  for (const b of batches) {
    const r = await model.lossAndGrads(b, { lossDenominator: denominator });
    loss += (await dev.read(r.lossSum))[0];
    r.lossSum.dispose();
  }
  const grads = new Map<string, Float32Array>();
  for (const p of model.params) {
    grads.set(p.name, p.grad ? await dev.readF32(p.grad) : new Float32Array(p.value.size));
  }
  return { loss: denominator > 0 ? loss / denominator : 0, grads, model };
}

/** Reference loss and gradients, summed over micro-batches with a shared denominator. */
export function referenceLossAndGrads(
  cfg: ModelConfig,
  weights: RefParams,
  batches: Batch[],
): { loss: number; grads: Map<string, Float64Array> } {
  let denominator = 0;
  for (const b of batches) for (const t of b.targets) if (t !== -100) denominator++;
  let loss = 0;
  const grads = new Map<string, Float64Array>();
  for (const b of batches) {
    const r = referenceLoss(cfg, weights, b.ids, b.targets, { lossDenominator: denominator });
    loss += r.loss;
    for (const [k, g] of r.grads) {
      const acc = grads.get(k);
      if (acc) g.forEach((x, i) => acc[i] += x);
      else grads.set(k, g.slice());
    }
  }
  return { loss, grads };
}

/**
 * Asserts the device path's loss and every parameter gradient match the f64 reference
 * (loss within 1e-4 relative; gradients within `atol + rtol·|g|`, with `atol` relative to the
 * tensor's largest gradient when `relativeAtol`), and that nothing leaks.
 */
export async function assertMatchesReference(
  dev: Device,
  cfg: ModelConfig,
  weights: RefParams,
  batches: Batch[],
  policy: MemoryPolicy = {},
  tol: { atol: number; rtol: number; relativeAtol?: boolean } = { atol: 2e-5, rtol: 2e-3 },
): Promise<void> {
  const marker = dev.allocator.nextId;
  const got = await deviceLossAndGrads(dev, cfg, weights, batches, policy);
  got.model.dispose();
  dev.allocator.assertNoLeaksSince(marker);
  const want = referenceLossAndGrads(cfg, weights, batches);
  if (!(Math.abs(got.loss - want.loss) <= 1e-4 * Math.abs(want.loss))) {
    throw new Error(`${cfg.name}: loss ${got.loss} vs reference ${want.loss}`);
  }
  for (const [name, g] of want.grads) {
    let scale = 1;
    if (tol.relativeAtol) {
      scale = 0;
      for (const x of g) scale = Math.max(scale, Math.abs(x));
    }
    assertAllClose(
      got.grads.get(name)!,
      g,
      { atol: tol.atol * scale + (tol.relativeAtol ? 1e-7 : 0), rtol: tol.rtol },
      `${cfg.name} ${name}`,
    );
  }
}
