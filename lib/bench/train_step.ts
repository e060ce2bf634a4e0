/**
 * Benchmark rows for a whole training step of `llama3-tiny` (forward, backward, AdamW),
 * standard and MsT + recomputation, beside the same model written in TensorFlow.js on the
 * same adapter. Tokens/s = S / median step time after one warm-up step.
 */

import type { WebGPUDevice } from "../device/webgpu.ts";
import { formatBytes } from "../device/dtype.ts";
import { type BuildOptions, Model } from "../models/model.ts";
import { getPreset } from "../models/presets.ts";
import { makeBatches } from "../train/data_source.ts";
import { Trainer } from "../train/trainer.ts";
import { planStep } from "../plan/planner.ts";
import type { BenchRow } from "./row.ts";
import { benchTfjsTrainStep } from "./tfjs_llama.ts";
import { median, type Tf } from "./tfjs_peer.ts";

/** One of our training-step measurements. */
export interface StepMeasurement {
  msPerStep: number;
  tokensPerSec: number;
  peakBytes: number;
  submitsPerStep: number;
  dispatchesPerStep: number;
  losses: number[];
}

/** Times `steps` training steps of a preset on the device (after one warm-up step). */
export async function measureTrainStep(
  dev: WebGPUDevice,
  preset: string,
  S: number,
  steps: number,
  policy: BuildOptions,
): Promise<StepMeasurement> {
  const cfg = getPreset(preset);
  const model = Model.build(dev, cfg, { seed: 1, ...policy });
  const trainer = new Trainer(dev, model);
  const data = await makeBatches("repeat", cfg, S, 1);
  const losses: number[] = [];
  losses.push((await trainer.step(data.next())).loss); // warm-up: pipelines compile here
  const ms: number[] = [];
  let peak = 0;
  const s0 = dev.submits;
  const d0 = dev.dispatches;
  for (let i = 0; i < steps; i++) {
    const r = await trainer.step(data.next());
    ms.push(r.ms);
    losses.push(r.loss);
    peak = Math.max(peak, r.peakBytes);
  }
  model.dispose();
  const m = median(ms);
  return {
    msPerStep: m,
    tokensPerSec: S / (m / 1000),
    peakBytes: peak,
    submitsPerStep: (dev.submits - s0) / steps,
    dispatchesPerStep: (dev.dispatches - d0) / steps,
    losses,
  };
}

/** Bytes a model keeps between steps: weights and AdamW moments. */
function residentBytes(m: Model): number {
  let n = 0;
  for (const p of m.params) n += p.value.bytes + (p.m?.bytes ?? 0) + (p.v?.bytes ?? 0);
  return n;
}

/** A model + trainer + data ready to step, for interleaved timing. */
async function stepper(dev: WebGPUDevice, preset: string, S: number, policy: BuildOptions) {
  let other: Model | null = null;
  const cfg = getPreset(preset);
  const model = Model.build(dev, cfg, { seed: 1, ...policy });
  const trainer = new Trainer(dev, model);
  const data = await makeBatches("repeat", cfg, S, 1);
  const ms: number[] = [];
  const losses: number[] = [];
  let peak = 0;
  let submits = 0;
  let dispatches = 0;
  return {
    model,
    /** The model interleaved with this one: its resident bytes are not this step's. */
    setOther(m: Model) {
      other = m;
    },
    async step(timed: boolean) {
      const s0 = dev.submits;
      const d0 = dev.dispatches;
      const r = await trainer.step(data.next());
      losses.push(r.loss);
      if (!timed) return;
      ms.push(r.ms);
      peak = Math.max(peak, r.peakBytes - (other ? residentBytes(other) : 0));
      submits += dev.submits - s0;
      dispatches += dev.dispatches - d0;
    },
    result(): StepMeasurement {
      const m = median(ms);
      return {
        msPerStep: m,
        tokensPerSec: S / (m / 1000),
        peakBytes: peak,
        submitsPerStep: submits / ms.length,
        dispatchesPerStep: dispatches / ms.length,
        losses,
      };
    },
  };
}

/**
 * Rows: standard and MsT+checkpoint steps of llama3-tiny at S, timed interleaved (std, MsT,
 * std, MsT, …) so machine load affects both alike, and the TF.js step.
 */
export async function benchTrainStep(
  dev: WebGPUDevice,
  tf: Tf | null,
  log: (s: string) => void,
  { S = 1024, steps = 6 }: { S?: number; steps?: number } = {},
): Promise<BenchRow[]> {
  const cfg = getPreset("llama3-tiny");
  log(`training step: llama3-tiny, S=${S}, ${steps} interleaved timed steps each`);
  const a = await stepper(dev, "llama3-tiny", S, {});
  const b = await stepper(dev, "llama3-tiny", S, {
    checkpoint: true,
    mst: { mlp: "auto", head: "auto" },
  });
  a.setOther(b.model);
  b.setOther(a.model);
  await a.step(false); // warm-up: pipelines compile here
  await b.step(false);
  for (let i = 0; i < steps; i++) {
    await a.step(true);
    await b.step(true);
  }
  a.model.dispose();
  b.model.dispose();
  const std = a.result();
  const mst = b.result();
  const maxDiff = Math.max(...std.losses.map((l, i) => Math.abs(l - mst.losses[i])));
  log(
    `  ours standard: ${std.tokensPerSec.toFixed(0)} tokens/s, peak ${formatBytes(std.peakBytes)}`,
  );
  log(
    `  ours MsT+checkpoint: ${mst.tokensPerSec.toFixed(0)} tokens/s, peak ${
      formatBytes(mst.peakBytes)
    }, max |Δloss| vs standard ${maxDiff.toExponential(1)}`,
  );
  let peer: number | null = null;
  let peerNote = "TF.js not run (--no-peer)";
  if (tf) {
    const t = await benchTfjsTrainStep(cfg, S, 3, { warmup: 1 });
    peer = t.tokensPerSec;
    peerNote = `TF.js peak ${t.peakBytes === null ? "?" : formatBytes(t.peakBytes)}`;
    log(`  TF.js: ${peer.toFixed(1)} tokens/s`);
  }
  // The pool is shared by the two interleaved models, so each policy's reserved bytes come from
  // its plan on the meta device (the same pool as on WebGPU: tests/pool_test.ts).
  const reserved = async (policy: BuildOptions) =>
    (await planStep({
      cfg,
      seq: S,
      dtype: "f32",
      mst: policy.mst ?? {},
      checkpoint: policy.checkpoint ?? false,
      optimizerInBackward: false,
      budget: Infinity,
      steps: 2,
    })).reservedBytes;
  const reservedStd = await reserved({});
  const reservedMst = await reserved({ checkpoint: true, mst: { mlp: "auto", head: "auto" } });
  const row = (name: string, m: StepMeasurement, res: number, extra: string): BenchRow => ({
    name,
    shape: `llama3-tiny S=${S}`,
    ms: m.msPerStep,
    value: m.tokensPerSec,
    unit: "tokens/s",
    peer,
    ratio: peer ? m.tokensPerSec / peer : null,
    peakBytes: m.peakBytes,
    reservedBytes: res,
    note: `peak ${formatBytes(m.peakBytes)}, reserved ${formatBytes(res)}, ${
      m.submitsPerStep.toFixed(0)
    } submits/step, ${m.dispatchesPerStep.toFixed(0)} dispatches/step; ${extra}`,
  });
  return [
    row("train step (standard)", std, reservedStd, peerNote),
    row(
      "train step (MsT+checkpoint)",
      mst,
      reservedMst,
      `${(mst.msPerStep / std.msPerStep).toFixed(2)}× the standard step time, max |Δloss| ${
        maxDiff.toExponential(1)
      }`,
    ),
  ];
}
