/**
 * Selective recomputation, the technique of `lib/techniques/selective_recomputation.ts`: its
 * policy checks and name, its flag, its DeepSpeed refusal, what it keeps (meta device) and that
 * loss and gradients equal full recomputation bit for bit (WebGPU).
 */

import assert from "node:assert/strict";
import type { ModelConfig } from "../lib/config/model_config.ts";
import { getPreset } from "../lib/config/presets.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import type { Batch } from "../lib/models/model.ts";
import { parsePolicy } from "../lib/cli/model_options.ts";
import { deepspeedConfig } from "../lib/plan/deepspeed_export.ts";
import { describePolicy, type MemoryPolicy, validatePolicy } from "../lib/techniques/policy.ts";
import { TECHNIQUES } from "../lib/techniques/registry.ts";
import { SELECTIVE_RECOMPUTATION } from "../lib/techniques/selective_recomputation.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { deviceLossAndGrads, randomBatch, randomWeights } from "../lib/testing/model_check.ts";
import { runSteps } from "../lib/train/run_steps.ts";

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

Deno.test("selective recomputation: declared after recomputation, checked and named", () => {
  const order = TECHNIQUES.map((t) => t.name);
  assert.ok(order.indexOf("selective recomputation") > order.indexOf("recomputation"));
  assert.equal(SELECTIVE_RECOMPUTATION.enabled({ checkpoint: true, keepAttention: true }), true);
  assert.equal(SELECTIVE_RECOMPUTATION.enabled({ checkpoint: true }), false);
  // selective recomputation: needs recomputation, ours only, not with offload
  assert.throws(
    () => validatePolicy({ keepAttention: true }),
    /keepAttention .*checkpoint \(recomputation\) is off.*--keep-attention/,
  );
  assert.throws(
    () => validatePolicy({ keepAttention: 1 } as never),
    /keepAttention must be true or false, got 1/,
  );
  assert.throws(
    () => validatePolicy({ checkpoint: true, keepAttention: true, framework: "hf" }),
    /transformers' gradient checkpointing .* no selective mode/,
  );
  assert.throws(
    () => validatePolicy({ checkpoint: true, keepAttention: true, offload: true }),
    /choose one of --keep-attention and --offload-checkpoints/,
  );
  validatePolicy({ checkpoint: true, keepAttention: true, mst: { mlp: "auto", head: "auto" } });
  assert.equal(
    describePolicy({ checkpoint: true, keepAttention: true, mst: { mlp: "auto", head: "auto" } }),
    "MsT + recomputation (attention kept)",
  );
});

Deno.test("selective recomputation: --keep-attention, and the DeepSpeed export refuses it", () => {
  assert.deepEqual(parsePolicy({ policy: "mst", "keep-attention": true }), {
    checkpoint: true,
    mst: { mlp: "auto", head: "auto" },
    keepAttention: true,
  });
  assert.throws(
    () => parsePolicy({ "keep-attention": true }),
    /--keep-attention .* recomputation is off; add --checkpoint/,
  );
  assert.throws(
    () =>
      deepspeedConfig({
        cfg: getPreset("llama3-8b"),
        policy: { checkpoint: true, keepAttention: true },
        dtype: "bf16",
        seq: 4096,
      }),
    /--export deepspeed with --keep-attention/,
  );
});

Deno.test(
  "selective recomputation also keeps each block's attention output and statistics",
  async () => {
    const S = 512;
    const kept = async (policy: MemoryPolicy) => {
      const { events } = await stepTimeline(S, policy);
      const fwdEnd = events.findIndex((e) => e.phase === "backward");
      const live = new Map<number, { tag: string; bytes: number }>();
      for (const e of events.slice(0, fwdEnd)) {
        if (e.kind === "alloc") live.set(e.id, { tag: e.tag, bytes: e.bytes });
        else if (e.kind === "free") live.delete(e.id);
        else live.get(e.id)!.tag = e.tag;
      }
      return [...live.values()].filter((x) => x.tag === "checkpoints")
        .reduce((a, x) => a + x.bytes, 0);
    };
    const full = await kept({ checkpoint: true, mst: { mlp: "auto", head: "auto" } });
    const selective = await kept({
      checkpoint: true,
      keepAttention: true,
      mst: { mlp: "auto", head: "auto" },
    });
    assert.equal(full, cfg.layers * S * cfg.hidden * 4);
    // + o (S, H·hd) and lse (H, S) f32 per block
    assert.equal(
      selective - full,
      cfg.layers * (S * cfg.heads * cfg.headDim * 4 + cfg.heads * S * 4),
    );
  },
);

Deno.test(
  "selective recomputation (attention kept): loss and every gradient equal full recomputation bit for bit, with one attention forward fewer per block",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const weights = randomWeights(SMALL, 7, 0.1);
    const b1 = randomBatch(SMALL.vocabSize, 29, 43, [5]);
    const b2 = randomBatch(SMALL.vocabSize, 13, 44);
    const cases: [MemoryPolicy, Batch[]][] = [
      [{ mst: { mlp: 3, head: 4 }, checkpoint: true }, [b1]],
      [{ checkpoint: true }, [b1, b2]],
    ];
    // Gemma-2: soft-capped, windowed attention and post-norms around the kept output
    const gemma = getPreset("gemma2-tiny");
    const gemmaCase = {
      cfg: gemma,
      weights: randomWeights(gemma, 8, 0.1),
      policy: { mst: { mlp: 2, head: 2 }, checkpoint: true } as MemoryPolicy,
      batches: [randomBatch(gemma.vocabSize, 37, 45, [2])],
    };
    const all = [
      ...cases.map(([policy, batches]) => ({ cfg: SMALL, weights, policy, batches })),
      gemmaCase,
    ];
    for (const { cfg, weights, policy, batches } of all) {
      const marker = dev.allocator.nextId;
      const d0 = dev.dispatches;
      const full = await deviceLossAndGrads(dev, cfg, weights, batches, policy);
      const d1 = dev.dispatches;
      full.model.dispose();
      const sel = await deviceLossAndGrads(dev, cfg, weights, batches, {
        ...policy,
        keepAttention: true,
      });
      const d2 = dev.dispatches;
      sel.model.dispose();
      dev.allocator.assertNoLeaksSince(marker);
      const what = `${cfg.name} ${JSON.stringify(policy)}`;
      // the recomputation skips exactly one attention forward per block and micro-batch
      assert.equal(d1 - d0 - (d2 - d1), cfg.layers * batches.length, `${what}: dispatches`);
      assert.ok(Number.isFinite(full.loss) && full.loss > 0);
      assert.equal(sel.loss, full.loss, `${what}: loss`);
      for (const [name, g] of full.grads) {
        const h = sel.grads.get(name)!;
        const i = g.findIndex((x, j) => !Object.is(x, h[j]));
        assert.equal(i, -1, `${what}: gradient of ${name} differs at ${i}: ${h[i]} vs ${g[i]}`);
      }
    }
  },
);

const cfg = getPreset("llama3-tiny");

async function stepTimeline(S: number, policy: MemoryPolicy) {
  const dev = new MetaDevice();
  dev.allocator.startTimeline();
  const ids = Int32Array.from({ length: S }, (_, i) => (i * 7) % cfg.vocabSize);
  await runSteps(dev, cfg, policy, { ids, targets: ids }, { steps: 1 });
  return { events: dev.allocator.stopTimeline() };
}
