/**
 * A measured training run for experiments: build a model under a policy on a device, run N
 * steps on a batch source, and return per-step losses, times and peaks, the peak breakdown,
 * the pool's peak and throughput (the first step is warm-up: pipeline compilation, pool
 * growth). The model and its optimizer state are freed afterwards, and the pool's cached
 * buffers are released before a run, so runs can follow each other on one device and each
 * run's reserved bytes are its own.
 */

import type { Device } from "../device/device.ts";
import type { TagBytes } from "../device/errors.ts";
import type { ModelConfig } from "../models/config.ts";
import { Model, type MstPolicy } from "../models/model.ts";
import { makeBatches } from "../train/data_source.ts";
import { Trainer } from "../train/trainer.ts";

/** A memory policy: MsT wrappers, recomputation, optimizer-in-backward. */
export interface TrainPolicy {
  mst: MstPolicy;
  checkpoint: boolean;
  optimizerInBackward?: boolean;
}

/** What to run. */
export interface TrainRunInput {
  cfg: ModelConfig;
  policy: TrainPolicy;
  /** S: tokens per sequence. */
  seq: number;
  steps: number;
  /** Batch source: "repeat" or "brown". */
  data: string;
  seed: number;
  lr: number;
  /** Called after each step (e.g. to record a metric row). */
  onStep?: (step: StepFigures) => void;
}

/** Figures of one step. */
export interface StepFigures {
  step: number;
  loss: number;
  ms: number;
  peakBytes: number;
  /** Peak bytes of the device's pool during the step. */
  reservedBytes: number;
}

/** Result of {@link measureTraining}. */
export interface TrainRunResult {
  steps: StepFigures[];
  /** Largest step peak and the breakdown at it. */
  peakBytes: number;
  breakdown: TagBytes;
  /** Largest step peak of the device's pool (PyTorch's "reserved"). */
  reservedBytes: number;
  /** S / median step time, warm-up step excluded when there are two or more steps. */
  tokensPerSec: number;
  /** Live bytes after the model was freed minus before it was built (0 = no leak). */
  leakedBytes: number;
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Builds, trains for `steps` steps, frees; see {@link TrainRunResult}. */
export async function measureTraining(dev: Device, input: TrainRunInput): Promise<TrainRunResult> {
  dev.allocator.releaseCached();
  const before = dev.allocator.liveBytes;
  const data = await makeBatches(input.data, input.cfg, input.seq, input.seed);
  const model = Model.build(dev, input.cfg, {
    seed: input.seed,
    checkpoint: input.policy.checkpoint,
    mst: input.policy.mst,
  });
  const steps: StepFigures[] = [];
  let peakBytes = 0;
  let reservedBytes = 0;
  let breakdown: TagBytes = {};
  try {
    const trainer = new Trainer(dev, model, {
      adamw: { lr: input.lr },
      optimizerInBackward: input.policy.optimizerInBackward ?? false,
    });
    for (let i = 0; i < input.steps; i++) {
      const r = await trainer.step(data.next());
      const s = {
        step: i + 1,
        loss: r.loss,
        ms: r.ms,
        peakBytes: r.peakBytes,
        reservedBytes: r.reservedBytes,
      };
      reservedBytes = Math.max(reservedBytes, r.reservedBytes);
      steps.push(s);
      input.onStep?.(s);
      if (r.peakBytes > peakBytes) {
        peakBytes = r.peakBytes;
        breakdown = r.breakdown;
      }
    }
  } finally {
    model.dispose();
  }
  const timed = steps.length > 1 ? steps.slice(1) : steps;
  return {
    steps,
    peakBytes,
    breakdown,
    reservedBytes,
    tokensPerSec: input.seq / (median(timed.map((s) => s.ms)) / 1000),
    leakedBytes: dev.allocator.liveBytes - before,
  };
}
