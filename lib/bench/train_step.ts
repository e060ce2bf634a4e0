/**
 * Benchmark rows for a whole training step of `llama3-tiny` (forward, backward, AdamW),
 * standard and MsT + recomputation, in f32 and (on a second, `shader-f16` device) in mixed
 * precision f16, beside the same model written in TensorFlow.js on the same adapter. Tokens/s is
 * the step driver's: S / median step time after one warm-up step.
 */

import type { WebGPUDevice } from "../device/webgpu.ts";
import { formatBytes } from "../device/dtype.ts";
import { Model } from "../models/model.ts";
import { describePolicy, type MemoryPolicy, POLICIES } from "../techniques/policy.ts";
import { getPreset } from "../config/presets.ts";
import { makeBatches } from "../train/data_source.ts";
import { type RunStepsResult, StepRunner } from "../train/run_steps.ts";
import { planStep } from "../plan/planner.ts";
import type { BenchRow } from "./row.ts";
import { benchTfjsTrainStep } from "./tfjs_llama.ts";
import type { Tf } from "./tfjs_peer.ts";
import { runTorchStep, type TorchPython } from "./torch_peer.ts";
import { DEFAULT_ADAMW } from "../optim/adamw.ts";

/** One of our training-step measurements. */
export interface StepMeasurement {
  msPerStep: number;
  tokensPerSec: number;
  peakBytes: number;
  submitsPerStep: number;
  dispatchesPerStep: number;
  losses: number[];
  /** The driver's figures (tokens/s, timing spread, chunks, …). */
  run: RunStepsResult;
}

/** "min/median/max" of the timed steps, ms. */
function spread(m: StepMeasurement): string {
  const t = m.run.timing!;
  return [t.minMs, t.medianMs, t.maxMs].map((x) => x.toFixed(0)).join("/");
}

/** Bytes a model keeps between steps: weights (and f16 masters) and AdamW moments. */
function residentBytes(m: Model): number {
  let n = 0;
  for (const p of m.params) {
    n += p.value.bytes + (p.master?.bytes ?? 0) + (p.m?.bytes ?? 0) + (p.v?.bytes ?? 0);
  }
  return n;
}

/** A step driver with submit/dispatch counts, for interleaved timing. */
async function stepper(dev: WebGPUDevice, preset: string, S: number, policy: MemoryPolicy) {
  const cfg = getPreset(preset);
  const runner = new StepRunner(dev, cfg, policy, await makeBatches("repeat", cfg, S, 1), {
    init: { seed: 1 },
    warmup: 1,
  });
  let submits = 0;
  let dispatches = 0;
  return {
    runner,
    async step() {
      const s0 = dev.submits;
      const d0 = dev.dispatches;
      const r = await runner.step();
      if (r.warmup) return;
      submits += dev.submits - s0;
      dispatches += dev.dispatches - d0;
    },
    /**
     * The figures (frees the model); `otherBytes`: the resident bytes of the model
     * interleaved with this one, live during our steps but not ours.
     */
    result(otherBytes: number): StepMeasurement {
      const timed = runner.records.filter((r) => !r.warmup);
      const timedPeak = Math.max(...timed.map((r) => r.peakBytes));
      const run = runner.finish();
      const t = run.timing!;
      return {
        msPerStep: t.medianMs,
        tokensPerSec: run.tokensPerSec!,
        peakBytes: timedPeak - otherBytes,
        submitsPerStep: submits / t.timedSteps,
        dispatchesPerStep: dispatches / t.timedSteps,
        losses: run.losses.map((l) => l!),
        run,
      };
    },
  };
}

/**
 * Rows: standard and MsT + recomputation steps of llama3-tiny at S, timed interleaved (std, MsT,
 * std, MsT, …) so machine load affects both alike, and the TF.js step.
 */
export async function benchTrainStep(
  dev: WebGPUDevice,
  tf: Tf | null,
  log: (s: string) => void,
  { S = 1024, steps = 6, torch = null, dev16 = null }: {
    S?: number;
    steps?: number;
    /**
     * The python with torch for the PyTorch row; null: the row is skipped with a note that no
     * python3 has torch; `"off"`: skipped because peers are off (`--no-peer`).
     */
    torch?: TorchPython | null | "off";
    /** A mixed-precision device (`floats: "f16"`) for the f16 rows (null: no f16 rows). */
    dev16?: WebGPUDevice | null;
  } = {},
): Promise<BenchRow[]> {
  const cfg = getPreset("llama3-tiny");
  log(`training step: llama3-tiny, S=${S}, ${steps} interleaved timed steps each`);
  const a = await stepper(dev, "llama3-tiny", S, POLICIES.standard);
  const b = await stepper(dev, "llama3-tiny", S, POLICIES.mst);
  const half = dev16
    ? [
      await stepper(dev16, "llama3-tiny", S, { ...POLICIES.standard, dtype: "f16" }),
      await stepper(dev16, "llama3-tiny", S, { ...POLICIES.mst, dtype: "f16" }),
    ]
    : [];
  for (let i = 0; i < steps + 1; i++) { // the first step of each is the warm-up
    await a.step();
    await b.step();
    for (const h of half) await h.step();
  }
  // each result frees its model: read both resident sizes first
  const [residentA, residentB] = [residentBytes(a.runner.model), residentBytes(b.runner.model)];
  const resident16 = half.map((h) => residentBytes(h.runner.model));
  const std = a.result(residentB);
  const mst = b.result(residentA);
  const std16 = half.length ? half[0].result(resident16[1]) : null;
  const mst16 = half.length ? half[1].result(resident16[0]) : null;
  const [stdName, mstName] = [POLICIES.standard, POLICIES.mst].map(describePolicy);
  const maxDiff = Math.max(...std.losses.map((l, i) => Math.abs(l - mst.losses[i])));
  log(
    `  ours ${stdName}: ${std.tokensPerSec.toFixed(0)} tokens/s, peak ${
      formatBytes(std.peakBytes)
    }`,
  );
  log(
    `  ours ${mstName}: ${mst.tokensPerSec.toFixed(0)} tokens/s, peak ${
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
  const reserved = async (policy: MemoryPolicy) =>
    (await planStep({
      cfg,
      policy,
      seq: S,
      dtype: policy.dtype ?? "f32",
      budget: Infinity,
      steps: 2,
    })).reservedBytes;
  const reservedStd = await reserved(POLICIES.standard);
  const reservedMst = await reserved(POLICIES.mst);
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
    note: `step ms min/median/max ${spread(m)}, peak ${formatBytes(m.peakBytes)}, reserved ${
      formatBytes(res)
    }, ${m.submitsPerStep.toFixed(0)} submits/step, ${
      m.dispatchesPerStep.toFixed(0)
    } dispatches/step; ${extra}`,
  });
  return [
    row(`train step (${stdName})`, std, reservedStd, peerNote),
    row(
      `train step (${mstName})`,
      mst,
      reservedMst,
      `${(mst.msPerStep / std.msPerStep).toFixed(2)}× the standard step time, max |Δloss| ${
        maxDiff.toExponential(1)
      }`,
    ),
    ...(std16 && mst16 ? await halfRows(std16, mst16, std, mst, reserved, row, log) : []),
    await torchRow(dev, torch, S, std, log),
  ];
}

/** The f16 rows: tokens/s, peak and losses beside the f32 rows of the same policy. */
async function halfRows(
  std16: StepMeasurement,
  mst16: StepMeasurement,
  std: StepMeasurement,
  mst: StepMeasurement,
  reserved: (p: MemoryPolicy) => Promise<number>,
  row: (name: string, m: StepMeasurement, res: number, extra: string) => BenchRow,
  log: (s: string) => void,
): Promise<BenchRow[]> {
  const out: BenchRow[] = [];
  for (
    const [m, f32, policy] of [[std16, std, POLICIES.standard], [mst16, mst, POLICIES.mst]] as const
  ) {
    const p = { ...policy, dtype: "f16" as const };
    const dLoss = Math.max(...m.losses.map((l, i) => Math.abs(l - f32.losses[i])));
    const extra = `peak ${(m.peakBytes / f32.peakBytes).toFixed(2)}× f32's, ${
      (m.tokensPerSec / f32.tokensPerSec).toFixed(2)
    }× f32's tokens/s, max |Δloss| vs f32 ${dLoss.toExponential(1)}`;
    log(
      `  ours ${describePolicy(p)}: ${m.tokensPerSec.toFixed(0)} tokens/s, peak ${
        formatBytes(m.peakBytes)
      }; ${extra}`,
    );
    out.push(row(`train step (${describePolicy(p)})`, m, await reserved(p), extra));
  }
  return out;
}

/**
 * The PyTorch CPU row: the same llama3-tiny step (weights of seed 1, the same tokens, the
 * same AdamW) in a python subprocess, its step-0 loss checked against ours before timing.
 * Without torch, a row with a note and no figures.
 */
async function torchRow(
  dev: WebGPUDevice,
  torch: TorchPython | null | "off",
  S: number,
  std: StepMeasurement,
  log: (s: string) => void,
): Promise<BenchRow> {
  const name = "train step (PyTorch CPU peer)";
  const shape = `llama3-tiny S=${S}`;
  if (!torch || torch === "off") {
    const why = torch === "off"
      ? "--no-peer"
      : "no python3 with torch (Debian: apt-get install python3-torch)";
    log(`  PyTorch: skipped (${why})`);
    return {
      name,
      shape,
      ms: NaN,
      value: NaN,
      unit: "tokens/s",
      peer: null,
      ratio: null,
      note: `skipped: ${why}`,
    };
  }
  const cfg = getPreset("llama3-tiny");
  const model = Model.build(dev, cfg, {}, { seed: 1 });
  const weights = await model.readWeights();
  model.dispose();
  const batch = (await makeBatches("repeat", cfg, S, 1)).next();
  const t = await runTorchStep(torch, cfg, weights, batch, DEFAULT_ADAMW, {
    warmup: 1,
    steps: 3,
    expectLoss0: std.losses[0],
    tolerance: 1e-4,
  });
  const d0 = Math.abs(t.losses[0] - std.losses[0]);
  log(
    `  PyTorch ${t.version} (CPU, ${t.threads} threads): ${t.tokensPerSec.toFixed(0)} tokens/s, ` +
      `step-0 loss ${t.losses[0].toFixed(5)} vs ours ${std.losses[0].toFixed(5)}`,
  );
  return {
    name,
    shape,
    ms: t.msPerStep,
    value: t.tokensPerSec,
    unit: "tokens/s",
    peer: null,
    ratio: null,
    note: `torch ${t.version}, ${t.threads} CPU threads; ours standard / PyTorch = ${
      (std.tokensPerSec / t.tokensPerSec).toFixed(2)
    }×; step-0 loss ${t.losses[0].toFixed(5)} vs ours ${std.losses[0].toFixed(5)} (|Δ| ${
      d0.toExponential(1)
    }, checked before timing)`,
  };
}
