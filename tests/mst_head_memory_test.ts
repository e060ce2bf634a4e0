/**
 * The mini-sequence head with one chunk (M = 1) costs no more than the plain head: the chunk is
 * a view of the hidden states and targets (no copy), and its losses and dy are the whole ones.
 * Measured through the allocator on the meta device.
 */

import assert from "node:assert/strict";
import { MetaDevice } from "../lib/device/meta.ts";
import type { Tensor } from "../lib/device/tensor.ts";
import { Model } from "../lib/models/model.ts";
import { getPreset } from "../lib/config/presets.ts";
import { MiniSequenceHeadLoss } from "../lib/mst/mini_sequence_head.ts";
import { type HeadLoss, LMHeadLoss } from "../lib/nn/lm_head_loss.ts";
import { Parameter } from "../lib/nn/parameter.ts";
import { Trainer } from "../lib/train/trainer.ts";

const cfg = getPreset("llama3-tiny"); // d=64, V=2048

/** Peak live bytes of one head forward + backward, above what was live before it. */
function headPeak(make: (dev: MetaDevice, w: Parameter) => HeadLoss, S: number, fused: boolean) {
  const dev = new MetaDevice();
  const w = new Parameter(
    "lm_head.weight",
    dev.tensor([cfg.vocabSize, cfg.hidden], { tag: "weights", name: "lm_head.weight" }),
  ); // (V, d)
  const y: Tensor = dev.tensor([S, cfg.hidden], { tag: "activations", name: "y" }); // (S, d)
  const targets = dev.tensor([S], { tag: "data", dtype: "i32", name: "targets" }); // (S)
  const head = make(dev, w);
  const base = dev.allocator.liveBytes;
  dev.allocator.resetPeak();
  const { lossSum, saved } = head.forward(y, targets, fused ? 1 / S : undefined);
  const dy = head.backward(saved, 1 / S);
  lossSum.dispose(); // read after backward in a training step
  dy.dispose();
  return dev.allocator.peakBytes - base;
}

Deno.test("MsT head with M=1: peak ≤ the plain head's, fused or recomputing", () => {
  for (const S of [2048, 1000]) {
    const plain = headPeak((dev, w) => new LMHeadLoss(dev, "lm_head", w, 0), S, false);
    for (const fused of [true, false]) {
      const m1 = headPeak(
        (dev, w) => new MiniSequenceHeadLoss(dev, "lm_head", w, 0, 1, fused),
        S,
        fused,
      );
      assert.ok(m1 <= plain, `S=${S} fused=${fused}: M=1 peak ${m1} > plain ${plain}`);
    }
  }
});

Deno.test("a training step with the M=1 head peaks at most the targets above the plain head", async () => {
  const S = 2048;
  const ids = Int32Array.from({ length: S }, (_, i) => (i * 31) % cfg.vocabSize);
  const peak = async (opts: Parameters<typeof Model.build>[2]) => {
    const dev = new MetaDevice();
    const trainer = new Trainer(dev, Model.build(dev, cfg, opts));
    await trainer.step({ ids, targets: ids });
    return (await trainer.step({ ids, targets: ids })).peakBytes; // with AdamW state live
  };
  const plain = await peak({ checkpoint: true });
  const m1 = await peak({ checkpoint: true, mst: { head: 1 } });
  // The fused head forms its gradients in forward, where the model still holds the batch's
  // targets (S i32); the plain head's peak is in backward, after they are freed. Before the
  // chunk became a view, M=1 peaked 1,073,148 B higher (42,798,852 B against 41,725,704 B).
  const targetsBytes = S * 4;
  assert.ok(m1 <= plain + targetsBytes, `M=1 ${m1} B > plain ${plain} B + targets`);
});
