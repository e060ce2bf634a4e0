/**
 * Checkpoints of a LoRA run (`lib/train/run_io.ts`): only the adapters and their moments are
 * saved (plus the seed of the frozen base), beside them the adapters in PEFT's layout
 * (`adapter_model.safetensors`, `adapter_config.json`), and a resumed LoRA or QLoRA run
 * continues bit for bit; a LoRA checkpoint resumed without LoRA, or with other targets, is
 * refused with a clear error.
 */

import assert from "node:assert/strict";
import { SMALL as MST_SMALL } from "./fixtures/small_model.ts";
import { join } from "node:path";
import type { ModelConfig } from "../lib/config/model_config.ts";
import { loadCheckpoint } from "../lib/checkpoint/checkpoint_dir.ts";
import { loadLoraAdapter } from "../lib/checkpoint/peft_adapter.ts";
import { Model } from "../lib/models/model.ts";
import type { MemoryPolicy } from "../lib/techniques/policy.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { randomBatch } from "../lib/testing/model_check.ts";
import { loadRun, saveRun } from "../lib/train/run_io.ts";
import { Trainer } from "../lib/train/trainer.ts";

const SMALL: ModelConfig = { ...MST_SMALL, name: "lora-ckpt" };

Deno.test(
  "LoRA checkpoints: adapters only (+ PEFT files), and a resumed LoRA / QLoRA run is bit-exact",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const batches = [1, 2, 3, 4].map((i) => randomBatch(SMALL.vocabSize, 19, i));
    const policies: MemoryPolicy[] = [
      { lora: { r: 4, alpha: 8, targets: ["q", "v", "down"] } },
      { lora: { r: 2, alpha: 4, base: "nf4" }, checkpoint: true, mst: { mlp: 2, head: 2 } },
    ];
    for (const policy of policies) {
      const dir = await Deno.makeTempDir({ prefix: "mst-lora-ckpt-" });
      try {
        // 4 steps straight, and 2 + save + resume + 2
        const model = Model.build(dev, SMALL, policy, { seed: 7 });
        const trainer = new Trainer(dev, model);
        const straight: number[] = [];
        let adapters = new Map<string, Float32Array>();
        for (const [i, b] of batches.entries()) {
          straight.push((await trainer.step(b)).loss);
          if (i === 1) await saveRun(dir, trainer, { position: 2 }, { note: "test" });
        }
        for (const p of model.params) {
          if (!p.frozen) adapters.set(p.name, await dev.readF32(p.value));
        }
        model.dispose();

        const state = await loadCheckpoint(dir);
        const names = [...state.model.keys()];
        assert.ok(names.length > 0 && names.every((n) => n.includes(".lora_")), "adapters only");
        assert.equal(state.info.extra?.loraBaseSeed, 7);
        const step = (await Deno.readTextFile(join(dir, "checkpoint.json"))).match(
          /"path":"([^"]+)"/,
        )![1];
        const peft = await loadLoraAdapter(join(dir, step));
        assert.equal(peft.config.r, policy.lora!.r);
        assert.equal(peft.adapters.size, names.length / 2);

        const run = await loadRun(dev, dir, policy);
        const t2 = new Trainer(dev, run.model);
        run.restoreOptimizer(t2);
        const resumed = [];
        for (const b of batches.slice(2)) resumed.push((await t2.step(b)).loss);
        assert.deepEqual(resumed, straight.slice(2), `${JSON.stringify(policy)}: losses`);
        const again = new Map<string, Float32Array>();
        for (const p of run.model.params) {
          if (!p.frozen) again.set(p.name, await dev.readF32(p.value));
        }
        assert.deepEqual(again, adapters, "adapters after the resumed steps");
        run.model.dispose();
        adapters = new Map();

        await assert.rejects(
          () => loadRun(dev, dir, {}),
          /the checkpoint is a LoRA run's .* resume it with its --lora settings/,
        );
        await assert.rejects(
          () => loadRun(dev, dir, { ...policy, lora: { ...policy.lora!, targets: ["q"] } }),
          /--lora targets differ from the checkpoint's|values for shape/,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
  },
);
