/**
 * One training step: forward → loss → backward → AdamW, with the memory accounting of each
 * phase, gradient accumulation over micro-batches, and optimizer-in-backward.
 */

import type { Device } from "../device/device.ts";
import type { TagBytes } from "../device/errors.ts";
import type { Batch, Model } from "../models/model.ts";
import type { Parameter } from "../nn/parameter.ts";
import { sumSquares } from "../ops/reduce.ts";
import { AdamW, type AdamWOptions, DEFAULT_ADAMW } from "../optim/adamw.ts";
import { accountingProfile } from "../profiles/registry.ts";
import { trainSettings } from "../techniques/policy.ts";
import { LossScaler, type LossScalerOptions } from "../optim/loss_scaler.ts";

/** Options of a {@link Trainer}. */
export interface TrainerOptions {
  /** AdamW hyper-parameters, over {@link DEFAULT_ADAMW}. */
  adamw?: Partial<AdamWOptions>;
  /** Dynamic loss scaling of a mixed-precision (f16) model (ignored in f32). */
  lossScaler?: LossScalerOptions;
}

/** Figures of one step. */
export interface StepResult {
  /** Mean loss over valid targets (NaN on the meta device). */
  loss: number;
  /** Peak live bytes during the step. */
  peakBytes: number;
  /** Live bytes per tag at that peak. */
  breakdown: TagBytes;
  /** Peak bytes the device's pool held during the step (every resource kind, live or cached). */
  reservedBytes: number;
  /** Peak bytes held in host memory during the step (tag `host`: offloaded checkpoints). */
  hostPeakBytes: number;
  /** Live bytes after the step. */
  liveBytes: number;
  /** Wall time of the step, ms (includes waiting for the device). */
  ms: number;
  /** Phase when the peak was reached (`forward`, `backward` or `optimizer`). */
  peakPhase: string;
  /** Mixed precision: the step overflowed in f16 and was skipped (no update). False in f32. */
  skipped: boolean;
  /** Mixed precision: the loss scale the step used; null in f32. */
  lossScale: number | null;
  /** Peak live bytes within each phase of the step. */
  phasePeaks: Record<string, number>;
}

/** Runs training steps of a model. */
export class Trainer {
  /** The AdamW optimizer. */
  readonly optimizer: AdamW;
  /**
   * Whether parameters are updated during backward (global clipping is then off): the
   * model's memory policy decides.
   */
  readonly optimizerInBackward: boolean;
  /** Dynamic loss scaling, when the model is mixed precision (an f16 device); else null. */
  readonly scaler: LossScaler | null;
  /**
   * A trainer with a new AdamW optimizer for `model`, following the model's memory policy.
   * @param dev The device.
   * @param model The model to train.
   * @param opts AdamW options.
   */
  constructor(readonly dev: Device, readonly model: Model, opts: TrainerOptions = {}) {
    const adamw = { ...DEFAULT_ADAMW, ...opts.adamw };
    this.optimizerInBackward = trainSettings(model.policy).optimizerInBackward;
    if (this.optimizerInBackward) adamw.maxGradNorm = 0;
    // the profile's optimizer (the HF profile's steps with torch.optim's temporaries; same update)
    this.optimizer = accountingProfile(model.policy.framework).layers.optimizer(dev, adamw);
    this.scaler = dev.floatType === "f16" ? new LossScaler(opts.lossScaler) : null;
    if (this.scaler && this.optimizerInBackward) {
      throw new Error(
        "optimizer-in-backward cannot run in mixed precision (f16): dynamic loss scaling must " +
          "see every gradient before any update to skip an overflowing step; drop " +
          "--optimizer-in-backward or train in f32",
      );
    }
  }

  /**
   * One optimizer step over one or more micro-batches (gradients accumulate; the loss is
   * normalized by the valid targets of all micro-batches together).
   */
  async step(microBatches: Batch | Batch[]): Promise<StepResult> {
    const batches = Array.isArray(microBatches) ? microBatches : [microBatches];
    if (batches.length === 0) throw new Error("step: no micro-batch given");
    const dev = this.dev;
    const t0 = performance.now();
    dev.allocator.resetPeak();
    let denominator = 0;
    for (const b of batches) for (const t of b.targets) if (t !== -100) denominator++;
    const stepNo = this.optimizer.step + 1;
    const lossScale = this.scaler?.scale ?? 1;
    const lossSums = [];
    const zero = this.model.zero;
    for (let i = 0; i < batches.length; i++) {
      const last = i === batches.length - 1;
      const onGradReady = zero
        ? (p: Parameter) => zero.gradReady(p) // a planned rank: gradients go to ZeRO
        : this.optimizerInBackward && last
        ? (p: Parameter) => this.optimizer.update(p, stepNo)
        : undefined;
      const r = await this.model.lossAndGrads(batches[i], {
        lossDenominator: denominator,
        onGradReady,
        lossScale,
      });
      lossSums.push(r.lossSum);
    }
    dev.setPhase("optimizer");
    let skipped = false;
    if (zero && zero.plan.zero >= 1) {
      zero.step(this.model.params); // the rank updates its partition
      this.optimizer.step = stepNo;
    } else if (this.optimizerInBackward) this.optimizer.step = stepNo;
    else {
      zero?.reduceGradients(this.model.params); // plain data parallel: all-reduce buckets
      if (this.scaler) {
        // Overflow check: the squared norm of the scaled gradients, accumulated in f32.
        const withGrad = this.model.params.filter((p) => p.grad);
        const normSq = sumSquares(dev, withGrad.map((p) => p.grad!), { tag: "workspace" });
        const value = (await dev.read(normSq))[0];
        skipped = this.scaler.update(value, dev.kind === "meta").skipped;
        if (skipped) {
          // The run's step count still advances (so resume and schedules count iterations); the
          // next update's bias correction uses that count, a small departure from PyTorch.
          this.optimizer.step = stepNo;
          for (const p of withGrad) p.dropGrad();
        } else this.optimizer.stepAll(this.model.params, { scale: lossScale, normSq });
        normSq.dispose();
      } else this.optimizer.stepAll(this.model.params);
    }
    let loss = 0;
    for (const ls of lossSums) {
      loss += (await dev.read(ls))[0];
      ls.dispose();
    }
    await dev.sync();
    dev.setPhase("");
    const s = dev.allocator.stats();
    return {
      loss: denominator > 0 ? loss / denominator : 0,
      peakBytes: s.peakBytes,
      breakdown: s.peakBreakdown,
      reservedBytes: s.peakReservedBytes,
      hostPeakBytes: s.hostPeakBytes,
      liveBytes: s.liveBytes,
      ms: performance.now() - t0,
      peakPhase: s.peakPhase,
      phasePeaks: s.phasePeaks,
      skipped,
      lossScale: this.scaler ? lossScale : null,
    };
  }
}
