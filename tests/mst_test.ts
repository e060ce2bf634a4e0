/**
 * MsT is exact: the mini-sequence MLP, the mini-sequence LM-head loss and activation
 * recomputation give the same loss and gradients as the unchunked model (f32 on the GPU),
 * including the cases the reference code gets wrong; checkpoint offload changes nothing, bit
 * for bit.
 */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import type { ModelConfig } from "../lib/config/model_config.ts";
import type { Batch } from "../lib/models/model.ts";
import type { MemoryPolicy } from "../lib/techniques/policy.ts";
import { getPreset } from "../lib/config/presets.ts";
import { chunkRanges } from "../lib/mst/chunking.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import {
  deviceLossAndGrads,
  randomBatch,
  randomWeights,
  referenceLossAndGrads,
} from "../lib/testing/model_check.ts";

const SMALL: ModelConfig = {
  ...getPreset("llama3-tiny"),
  name: "mst-small",
  vocabSize: 97,
  hidden: 32,
  intermediate: 56,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  attnScale: 8 ** -0.5,
};

/** Normwise relative difference max|a−b| / max|b| (0/0 = 0). */
function normwise(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}

async function compare(
  dev: Device,
  cfg: ModelConfig,
  batches: Batch[],
  policy: MemoryPolicy,
  tol = 1e-5,
): Promise<void> {
  const weights = randomWeights(cfg, 3, 0.1);
  const marker = dev.allocator.nextId;
  const base = await deviceLossAndGrads(dev, cfg, weights, batches);
  base.model.dispose();
  const mst = await deviceLossAndGrads(dev, cfg, weights, batches, policy);
  mst.model.dispose();
  dev.allocator.assertNoLeaksSince(marker);
  const what = JSON.stringify(policy);
  const lossErr = Math.abs(mst.loss - base.loss) / Math.max(Math.abs(base.loss), 1e-30);
  assert.ok(lossErr <= tol, `${what}: loss ${mst.loss} vs ${base.loss} (rel ${lossErr})`);
  for (const [name, g] of base.grads) {
    const err = normwise(mst.grads.get(name)!, g);
    assert.ok(
      err <= tol,
      `${what}: gradient of ${name} differs by ${err.toExponential(2)} (normwise)`,
    );
  }
}

Deno.test("chunk ranges cover every row: S mod M ≠ 0 and S < M", () => {
  assert.deepEqual(chunkRanges(10, 3), [[0, 4], [4, 7], [7, 10]]);
  assert.deepEqual(chunkRanges(2, 7), [[0, 1], [1, 2]]);
  assert.deepEqual(chunkRanges(7, 7).length, 7);
  assert.throws(() => chunkRanges(10, 0), /positive integer/);
});

for (const M of [1, 2, 3, 7]) {
  Deno.test(
    `MsT M=${M} (S=29, S mod M ≠ 0 for M>1) + recomputation equals the unchunked model`,
    gpuTest,
    async () => {
      const dev = await testDevice();
      const batch = randomBatch(SMALL.vocabSize, 29, 11 + M);
      await compare(dev, SMALL, [batch], { mst: { mlp: M, head: M }, checkpoint: true });
    },
  );
}

Deno.test("MsT with S < M: every target still counts", gpuTest, async () => {
  const dev = await testDevice();
  const batch = randomBatch(SMALL.vocabSize, 5, 21);
  await compare(dev, SMALL, [batch], { mst: { mlp: 8, head: 8 } });
});

Deno.test("MsT with a chunk whose labels are all −100", gpuTest, async () => {
  const dev = await testDevice();
  const batch = randomBatch(SMALL.vocabSize, 24, 22, [8, 9, 10, 11, 12, 13, 14, 15, 3]);
  await compare(dev, SMALL, [batch], { mst: { mlp: 3, head: 3 } });
});

Deno.test("every label ignored: loss 0 and zero gradients, not NaN", gpuTest, async () => {
  const dev = await testDevice();
  const batch = randomBatch(SMALL.vocabSize, 12, 23, [...Array(12).keys()]);
  const weights = randomWeights(SMALL, 4, 0.1);
  for (const policy of [{}, { mst: { mlp: 3, head: 3 } }] as MemoryPolicy[]) {
    const r = await deviceLossAndGrads(dev, SMALL, weights, [batch], policy);
    r.model.dispose();
    assert.equal(r.loss, 0);
    for (const [name, g] of r.grads) {
      assert.ok(g.every((x) => x === 0), `${name} gradient is not zero`);
    }
  }
});

Deno.test(
  "MsT on Gemma-2 tiny: tied embeddings (sum of both gradients) and both soft-caps",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const cfg: ModelConfig = {
      ...getPreset("gemma2-tiny"),
      vocabSize: 211,
      layers: 2,
      finalSoftcap: 3,
      attnSoftcap: 5,
      slidingWindow: 6,
    };
    const batch = randomBatch(cfg.vocabSize, 19, 24, [2]);
    await compare(dev, cfg, [batch], { mst: { mlp: 3, head: 4 }, checkpoint: true });
    // And the chunked Gemma-2 head matches the f64 reference (soft-cap applied inside chunks).
    const weights = randomWeights(cfg, 5, 0.1);
    const got = await deviceLossAndGrads(dev, cfg, weights, [batch], { mst: { mlp: 3, head: 4 } });
    got.model.dispose();
    const want = referenceLossAndGrads(cfg, weights, [batch]);
    assert.ok(
      Math.abs(got.loss - want.loss) <= 1e-4 * want.loss,
      `loss ${got.loss} vs reference ${want.loss}`,
    );
    const e = normwise(
      got.grads.get("model.embed_tokens.weight")!,
      want.grads.get("model.embed_tokens.weight")!,
    );
    assert.ok(e < 1e-3, `tied embedding gradient vs reference: ${e}`);
  },
);

Deno.test("MsT with two accumulated micro-batches (1× head weight gradient)", gpuTest, async () => {
  const dev = await testDevice();
  const b1 = randomBatch(SMALL.vocabSize, 17, 31, [0]);
  const b2 = randomBatch(SMALL.vocabSize, 13, 32);
  await compare(dev, SMALL, [b1, b2], { mst: { mlp: 2, head: 3 }, checkpoint: true });
  const weights = randomWeights(SMALL, 3, 0.1);
  const got = await deviceLossAndGrads(dev, SMALL, weights, [b1, b2], { mst: { mlp: 2, head: 3 } });
  got.model.dispose();
  const want = referenceLossAndGrads(SMALL, weights, [b1, b2]);
  const e = normwise(got.grads.get("lm_head.weight")!, want.grads.get("lm_head.weight")!);
  assert.ok(e < 1e-3, `lm_head gradient vs f64 reference: ${e} (a 2× gradient would give ~1)`);
});

Deno.test(
  "mini-sequence head: gradients formed in forward equal backward recomputation",
  gpuTest,
  async () => {
    const { MiniSequenceHeadLoss } = await import("../lib/mst/mini_sequence_head.ts");
    const { Parameter } = await import("../lib/nn/parameter.ts");
    const { randomArray } = await import("../lib/testing/all_close.ts");
    const dev = await testDevice();
    const [S, d, V] = [23, 12, 37];
    const y = dev.upload(Float32Array.from(randomArray(S * d, 1)), [S, d], { tag: "activations" });
    const t = Int32Array.from({ length: S }, (_, i) => i === 4 ? -100 : (i * 7) % V);
    const targets = dev.upload(t, [S], { tag: "data", dtype: "i32" });
    const w = Float32Array.from(randomArray(V * d, 2, 0.3));
    const results = [];
    for (const fuse of [true, false]) {
      const p = new Parameter("lm_head.weight", dev.upload(w, [V, d], { tag: "weights" }));
      const head = new MiniSequenceHeadLoss(dev, "lm_head", p, 2.5, 3, fuse);
      const f = head.forward(y, targets, 1 / 22);
      const dy = head.backward(f.saved, 1 / 22);
      results.push({
        loss: (await dev.read(f.lossSum))[0],
        dy: await dev.readF32(dy),
        dw: await dev.readF32(p.grad!),
      });
      f.lossSum.dispose();
      dy.dispose();
      p.dispose();
    }
    y.dispose();
    targets.dispose();
    assert.equal(results[0].loss, results[1].loss);
    assert.ok(normwise(results[0].dy, results[1].dy) < 1e-6, "dy");
    assert.ok(normwise(results[0].dw, results[1].dw) < 1e-6, "dW");
  },
);

Deno.test(
  "checkpoint offload: loss and every gradient equal the run without offload bit for bit",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const weights = randomWeights(SMALL, 6, 0.1);
    const b1 = randomBatch(SMALL.vocabSize, 29, 41, [3]);
    const b2 = randomBatch(SMALL.vocabSize, 13, 42);
    const cases: [MemoryPolicy, Batch[]][] = [
      [{ mst: { mlp: 3, head: 4 }, checkpoint: true }, [b1]],
      [{ checkpoint: true }, [b1]],
      // two micro-batches: each one's checkpoints go out and come back
      [{ mst: { mlp: 2, head: 3 }, checkpoint: true }, [b1, b2]],
    ];
    for (const [policy, batches] of cases) {
      const marker = dev.allocator.nextId;
      const kept = await deviceLossAndGrads(dev, SMALL, weights, batches, policy);
      kept.model.dispose();
      const hostBefore = dev.allocator.stats().hostBytes;
      dev.allocator.resetPeak();
      const off = await deviceLossAndGrads(dev, SMALL, weights, batches, {
        ...policy,
        offload: true,
      });
      off.model.dispose();
      dev.allocator.assertNoLeaksSince(marker);
      const what = JSON.stringify(policy);
      // each block's (S, d) input was on the host; all of it is freed again
      const s = dev.allocator.stats();
      const S = Math.max(...batches.map((b) => b.ids.length));
      assert.equal(s.hostPeakBytes, SMALL.layers * S * SMALL.hidden * 4, `${what}: host peak`);
      assert.equal(s.hostBytes, hostBefore, `${what}: host bytes left`);
      assert.ok(Number.isFinite(kept.loss) && kept.loss > 0);
      assert.equal(off.loss, kept.loss, `${what}: loss`);
      for (const [name, g] of kept.grads) {
        const h = off.grads.get(name)!;
        const i = g.findIndex((x, j) => !Object.is(x, h[j]));
        assert.equal(i, -1, `${what}: gradient of ${name} differs at ${i}: ${h[i]} vs ${g[i]}`);
      }
    }
  },
);
