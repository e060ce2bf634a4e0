/**
 * Dynamic loss scaling for mixed-precision (f16) training, as PyTorch's `GradScaler`: the loss
 * (hence every gradient) is multiplied by `scale` so small gradients survive f16; after
 * backward the squared global norm of the scaled gradients is read (f32 accumulation). If it
 * is inf or NaN, some gradient overflowed: the step is skipped (gradients dropped, no update,
 * the optimizer's step count unchanged) and the scale halved. After `growthInterval` clean
 * steps in a row the scale doubles.
 *
 * On the meta device the norm reads as NaN (no data); it counts as clean there, so a plan
 * allocates exactly what a clean WebGPU step does.
 *
 * @example
 * ```ts
 * import { LossScaler } from "../../mod.ts";
 * const s = new LossScaler({ initScale: 1024, growthInterval: 2 });
 * s.update(Infinity); // overflow: skipped, scale 512
 * console.log(s.scale, s.skippedSteps); // 512 1
 * ```
 */

/** Options of a {@link LossScaler}. */
export interface LossScalerOptions {
  /** Initial scale (default 2¹⁶, as PyTorch). */
  initScale?: number;
  /** Clean steps before the scale doubles (default 2000, as PyTorch). */
  growthInterval?: number;
  /** Smallest scale (default 1): halving stops there. */
  minScale?: number;
  /** Largest scale (default 2²⁴). */
  maxScale?: number;
}

/** The scaler's state after a step. */
export interface ScalerUpdate {
  /** True when the step was skipped (a gradient overflowed). */
  skipped: boolean;
  /** The scale the step used. */
  scaleUsed: number;
  /** The scale of the next step. */
  scale: number;
}

/** Dynamic loss scale: doubles after clean runs, halves (and skips) on overflow. */
export class LossScaler {
  /** The current loss scale. */
  scale: number;
  /** Clean steps since the last change. */
  cleanSteps = 0;
  /** Steps skipped so far. */
  skippedSteps = 0;
  /** Clean steps before the scale doubles. */
  readonly growthInterval: number;
  /** Smallest scale. */
  readonly minScale: number;
  /** Largest scale. */
  readonly maxScale: number;

  /** Throws on a scale that is not a positive power of two or a bad interval. */
  constructor(opts: LossScalerOptions = {}) {
    this.scale = opts.initScale ?? 2 ** 16;
    this.growthInterval = opts.growthInterval ?? 2000;
    this.minScale = opts.minScale ?? 1;
    this.maxScale = opts.maxScale ?? 2 ** 24;
    if (!(this.scale > 0) || Math.log2(this.scale) % 1 !== 0) {
      throw new Error(`loss scaler: initScale must be a power of two, got ${this.scale}`);
    }
    if (!Number.isInteger(this.growthInterval) || this.growthInterval < 1) {
      throw new Error(
        `loss scaler: growthInterval must be an integer >= 1, got ${this.growthInterval}`,
      );
    }
  }

  /**
   * Records a step whose scaled gradients have squared norm `normSq` (inf/NaN: overflow; on
   * the meta device pass `meta = true`, a NaN then counts as clean). Returns what happened.
   */
  update(normSq: number, meta = false): ScalerUpdate {
    const scaleUsed = this.scale;
    const overflow = !meta && !Number.isFinite(normSq);
    if (overflow) {
      this.skippedSteps++;
      this.cleanSteps = 0;
      this.scale = Math.max(this.minScale, this.scale / 2);
    } else if (++this.cleanSteps >= this.growthInterval) {
      this.cleanSteps = 0;
      this.scale = Math.min(this.maxScale, this.scale * 2);
    }
    return { skipped: overflow, scaleUsed, scale: this.scale };
  }
}
