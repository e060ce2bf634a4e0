/**
 * The step driver: every entry point that runs training steps (the train task, the planner,
 * the bench, the experiments, the tests) goes through {@link runSteps} (or, to interleave
 * two runs, the {@link StepRunner} under it), so each figure has one definition:
 *
 * - per step: loss (`null` on the meta device), wall time, tokens, peak live bytes and the
 *   phase of that peak, live bytes after the step, and bytes leaked by the step;
 * - tokens/s: tokens per step / the MEDIAN time of the steps after the warm-up
 *   (`warmup`, default 1: pipeline compilation and pool growth happen there), with the
 *   spread (min / median / max) of those timed steps; `null` on the meta device, which
 *   computes nothing, and when no step follows the warm-up;
 * - the largest step peak, the per-tag breakdown at it, its phase, and the peak of each
 *   phase (`forward`, `backward`, `optimizer`; `other` between phases); the peak bytes held
 *   in host memory (tag `host`, checkpoint offload), which are outside the device's peak;
 * - the mini-sequence counts M actually run per part (after `"auto"` and the cap at S); a
 *   requested M above S is reported through `onWarning`;
 * - leak checks: the tensors (and host copies) a step allocates must be freed by its end (AdamW's moments,
 *   created by an optimizer's first step, excepted), and a model the driver built must
 *   leave the device's live bytes where they were. `leaks: "throw"` (default) raises
 *   {@link LeakError}; `"report"` only records the bytes.
 */

import type { Device } from "../device/device.ts";
import { LeakError, type LiveTensorInfo, type TagBytes } from "../device/errors.ts";
import type { ModelConfig } from "../config/model_config.ts";
import { type Batch, type InitOptions, Model, type ResolvedChunks } from "../models/model.ts";
import { describePolicy, type MemoryPolicy, partChunks } from "../techniques/policy.ts";
import type { AdamWOptions } from "../optim/adamw.ts";
import { Trainer } from "./trainer.ts";

/** Batches for the steps: one batch (repeated), a list (step i takes item i), or a stream. */
export type Batches = Batch | readonly Batch[] | { next(): Batch };

/** Options of {@link runSteps} and {@link StepRunner}. */
export interface RunStepsOptions {
  /**
   * Steps to run (default: the list's length for a list, else 5: one warm-up and four
   * timed steps).
   */
  steps?: number;
  /** Leading steps left out of tokens/s and the timing spread (default 1). */
  warmup?: number;
  /**
   * Continue an existing trainer (its model and optimizer state, e.g. a resumed run)
   * instead of building a model; the caller keeps and disposes it. Its model must have
   * the given config and policy.
   */
  trainer?: Trainer;
  /** Initialization of the model the driver builds (seed, given weights). */
  init?: InitOptions;
  /** AdamW hyper-parameters of the trainer the driver builds. */
  adamw?: Partial<AdamWOptions>;
  /** Called after each step, before the next (awaited: it may evaluate or save). */
  onStep?: (step: StepRecord) => void | Promise<void>;
  /** Receives warnings (e.g. an M above S); default `console.warn`. */
  onWarning?: (message: string) => void;
  /** On a leak: throw {@link LeakError} (default) or only report the bytes. */
  leaks?: "throw" | "report";
  /** Milliseconds clock timing each step (default `performance.now`). */
  clock?: () => number;
}

/** Figures of one step. */
export interface StepRecord {
  /** The optimizer's step count after this step (1-based; continues a resumed run). */
  step: number;
  /** True for a warm-up step (not timed). */
  warmup: boolean;
  /** Mean loss over the valid targets; `null` on the meta device. */
  loss: number | null;
  /** Wall time of the step, ms, waiting for the device included. */
  ms: number;
  /** Tokens in the step (S). */
  tokens: number;
  /** Peak live bytes during the step. */
  peakBytes: number;
  /** Phase when that peak was reached. */
  peakPhase: string;
  /** Peak bytes the device's pool held during the step (PyTorch's "reserved"). */
  reservedBytes: number;
  /** Peak bytes held in host memory during the step (tag `host`; outside `peakBytes`). */
  hostPeakBytes: number;
  /** Live bytes after the step. */
  liveBytes: number;
  /** Bytes allocated by the step and still live after it (0 = no leak). */
  leakedBytes: number;
  /** The M run per part in this step. */
  chunks: ResolvedChunks;
  /** Mixed precision: the step overflowed in f16 and was skipped (no update). */
  skipped: boolean;
  /** Mixed precision: the loss scale the step used; null in f32. */
  lossScale: number | null;
}

/** Spread of the timed step times, ms. */
export interface TimingSpread {
  /** Warm-up steps left out. */
  warmupSteps: number;
  /** Steps timed. */
  timedSteps: number;
  /** Fastest timed step. */
  minMs: number;
  /** Median timed step: the one definition tokens/s uses. */
  medianMs: number;
  /** Slowest timed step. */
  maxMs: number;
}

/** Result of {@link runSteps}. */
export interface RunStepsResult {
  /** {@link describePolicy} of the policy. */
  policy: string;
  /** Device kind the steps ran on. */
  device: string;
  /** Every step, in order. */
  steps: StepRecord[];
  /** The losses of the steps (`null` on the meta device). */
  losses: (number | null)[];
  /** Largest step peak, live bytes. */
  peakBytes: number;
  /** Live bytes per tag at that peak; sums to `peakBytes`. */
  breakdown: TagBytes;
  /** Phase of that peak (`forward`, `backward`, `optimizer` or `other`). */
  peakPhase: string;
  /** Peak live bytes of each phase over all steps. */
  phasePeaks: Record<string, number>;
  /** The tag holding the most bytes at the peak. */
  largestTag: string;
  /**
   * Largest step peak of the device's pool: buffers and textures live or cached, uniform and
   * readback buffers (PyTorch's "reserved"). A run that builds its model starts from an
   * emptied pool, so this is the run's own.
   */
  reservedBytes: number;
  /**
   * Largest step peak of the bytes held in host memory (tag `host`: block checkpoints under
   * the `offload` policy, 0 otherwise). Outside `peakBytes`, `breakdown` and any budget.
   */
  hostPeakBytes: number;
  /** Steps skipped by mixed precision's loss scaling (inf/NaN gradients), by step number. */
  skippedSteps: number[];
  /** Tokens / median timed step time; `null` on the meta device or with no timed step. */
  tokensPerSec: number | null;
  /** Min / median / max of the timed steps; `null` when `tokensPerSec` is. */
  timing: TimingSpread | null;
  /** The M run per part in the last step (`null`: the part is unchunked). */
  chunks: ResolvedChunks;
  /** Warnings given through `onWarning`. */
  warnings: string[];
  /**
   * Bytes leaked: allocated by a step and live after it, or (for a model {@link runSteps}
   * built) still live after the model was freed. 0 = no leak.
   */
  leakedBytes: number;
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of an empty list");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The tag with the most bytes (ties: the first in the breakdown's order). */
export function largestTag(breakdown: TagBytes): string {
  let best = "";
  for (const [t, b] of Object.entries(breakdown)) {
    if (best === "" || b > breakdown[best]) best = t;
  }
  return best;
}

const phaseName = (p: string) => p === "" ? "other" : p;

function sameConfig(a: ModelConfig, b: ModelConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Runs training steps one at a time (for interleaving two runs on one device, as the
 * bench does); {@link runSteps} is a loop over {@link step} then {@link finish}.
 */
export class StepRunner {
  /** The trainer (built here unless given). */
  readonly trainer: Trainer;
  readonly #owned: boolean;
  readonly #records: StepRecord[] = [];
  readonly #warnings: string[] = [];
  readonly #next: () => Batch;
  readonly #clock: () => number;
  #peak = -1;
  #breakdown: TagBytes = {};
  #peakPhase = "";
  #phasePeaks: Record<string, number> = {};
  #warnedS = new Set<string>();
  #finished = false;

  /**
   * Builds the model and trainer (or takes `opts.trainer`).
   * @param dev The device.
   * @param cfg The model config.
   * @param policy The memory policy.
   * @param batches The batches.
   * @param opts Options, see {@link RunStepsOptions}.
   */
  constructor(
    readonly dev: Device,
    readonly cfg: ModelConfig,
    readonly policy: MemoryPolicy,
    batches: Batches,
    readonly opts: RunStepsOptions = {},
  ) {
    this.#clock = opts.clock ?? (() => performance.now());
    if (Array.isArray(batches)) {
      const list = batches as readonly Batch[];
      if (list.length === 0) throw new Error("runSteps: the batch list is empty");
      let i = 0;
      this.#next = () => list[i++ % list.length];
    } else if ("next" in batches) {
      const src = batches as { next(): Batch };
      this.#next = () => src.next();
    } else {
      const b = batches as Batch;
      this.#next = () => b;
    }
    if (opts.trainer) {
      const m = opts.trainer.model;
      if (!sameConfig(m.cfg, cfg) || describePolicy(m.policy) !== describePolicy(policy)) {
        throw new Error(
          `runSteps: the given trainer's model is ${m.cfg.name} under "${
            describePolicy(m.policy)
          }", not ${cfg.name} under "${describePolicy(policy)}"`,
        );
      }
      this.trainer = opts.trainer;
      this.#owned = false;
    } else {
      // the pool's cached buffers of earlier runs go first, so this run's reserved bytes are its own
      dev.allocator.releaseCached();
      const model = Model.build(dev, cfg, policy, opts.init);
      this.trainer = new Trainer(dev, model, { adamw: opts.adamw });
      this.#owned = true;
    }
  }

  /** The model being trained. */
  get model(): Model {
    return this.trainer.model;
  }

  /** Steps run so far. */
  get records(): readonly StepRecord[] {
    return this.#records;
  }

  #warn(message: string): void {
    this.#warnings.push(message);
    (this.opts.onWarning ?? console.warn)(message);
  }

  /** Warns once per part and S when a requested M exceeds S. */
  #checkChunks(S: number): void {
    for (const part of ["mlp", "head"] as const) {
      const m = partChunks(this.policy, part);
      const key = `${part} ${S}`;
      if (typeof m === "number" && m > S && !this.#warnedS.has(key)) {
        this.#warnedS.add(key);
        this.#warn(
          `mst.${part}: M=${m} is more than S=${S} rows; ${S} chunks of one row are run ` +
            `(use M ≤ S or "auto")`,
        );
      }
    }
  }

  /** Runs one step and records it. */
  async step(): Promise<StepRecord> {
    if (this.#finished) throw new Error("StepRunner: step() after dispose() or finish()");
    const { dev, trainer } = this;
    const batch = this.#next();
    this.#checkChunks(batch.ids.length);
    const marker = dev.allocator.nextId;
    const t0 = this.#clock();
    const r = await trainer.step(batch);
    const ms = this.#clock() - t0;
    // tensors this step allocated that are still live (AdamW's moments, created by the
    // optimizer's first step, belong to the run, not the step)
    const first = trainer.optimizer.step === 1;
    const leaked: LiveTensorInfo[] = dev.allocator.liveSince(marker - 1)
      .filter((t) => !(first && t.tag === "optimizer"));
    const leakedBytes = leaked.reduce((a, t) => a + t.bytes, 0);
    if (leakedBytes > 0 && (this.opts.leaks ?? "throw") === "throw") {
      throw new LeakError(leakedBytes, leaked);
    }
    const rec: StepRecord = {
      step: trainer.optimizer.step,
      warmup: this.#records.length < (this.opts.warmup ?? 1),
      loss: dev.kind === "meta" ? null : r.loss,
      ms,
      tokens: batch.ids.length,
      peakBytes: r.peakBytes,
      peakPhase: phaseName(r.peakPhase),
      reservedBytes: r.reservedBytes,
      hostPeakBytes: r.hostPeakBytes,
      liveBytes: r.liveBytes,
      leakedBytes,
      chunks: this.model.resolvedChunks(),
      skipped: r.skipped,
      lossScale: r.lossScale,
    };
    this.#records.push(rec);
    if (r.peakBytes > this.#peak) {
      this.#peak = r.peakBytes;
      this.#breakdown = r.breakdown;
      this.#peakPhase = rec.peakPhase;
    }
    for (const [p, b] of Object.entries(r.phasePeaks)) {
      const name = phaseName(p);
      this.#phasePeaks[name] = Math.max(this.#phasePeaks[name] ?? 0, b);
    }
    await this.opts.onStep?.(rec);
    return rec;
  }

  /** Frees the model when this runner built it (once); no step can follow. */
  dispose(): void {
    if (!this.#finished && this.#owned) this.model.dispose();
    this.#finished = true;
  }

  /** The figures of the steps so far; disposes the model when this runner built it. */
  finish(): RunStepsResult {
    if (this.#records.length === 0) throw new Error("StepRunner: finish() before any step");
    this.dispose();
    const steps = this.#records;
    const timed = steps.filter((s) => !s.warmup);
    const timing = this.dev.kind === "meta" || timed.length === 0 ? null : {
      warmupSteps: steps.length - timed.length,
      timedSteps: timed.length,
      minMs: Math.min(...timed.map((s) => s.ms)),
      medianMs: median(timed.map((s) => s.ms)),
      maxMs: Math.max(...timed.map((s) => s.ms)),
    };
    const tokens = timed.reduce((a, s) => a + s.tokens, 0) / Math.max(timed.length, 1);
    return {
      policy: describePolicy(this.policy),
      device: this.dev.kind,
      steps: [...steps],
      losses: steps.map((s) => s.loss),
      peakBytes: this.#peak,
      breakdown: { ...this.#breakdown },
      peakPhase: this.#peakPhase,
      phasePeaks: { ...this.#phasePeaks },
      largestTag: largestTag(this.#breakdown),
      reservedBytes: Math.max(...steps.map((s) => s.reservedBytes)),
      hostPeakBytes: Math.max(...steps.map((s) => s.hostPeakBytes)),
      tokensPerSec: timing ? tokens / (timing.medianMs / 1000) : null,
      timing,
      chunks: steps[steps.length - 1].chunks,
      warnings: [...this.#warnings],
      leakedBytes: steps.reduce((a, s) => a + s.leakedBytes, 0),
      skippedSteps: steps.filter((s) => s.skipped).map((s) => s.step),
    };
  }
}

/**
 * Runs `opts.steps` training steps of `cfg` under `policy` on `dev` and returns their
 * figures (see the module doc for each definition). Builds the model (seeded by
 * `opts.init`) and frees it afterwards, or continues `opts.trainer`.
 *
 * @example Compare two named policies on the meta device (no compute: memory only)
 * ```ts
 * import { getPreset, MetaDevice, POLICIES, runSteps } from "../../mod.ts";
 *
 * const cfg = getPreset("llama3-tiny");
 * const ids = new Int32Array(1024).map((_, i) => i % cfg.vocabSize);
 * for (const policy of [POLICIES.standard, POLICIES.mst]) {
 *   const r = await runSteps(new MetaDevice(), cfg, policy, { ids, targets: ids }, { steps: 2 });
 *   console.log(r.policy, r.peakBytes, r.peakPhase, r.tokensPerSec); // tokens/s: null on meta
 * }
 * ```
 */
export async function runSteps(
  dev: Device,
  cfg: ModelConfig,
  policy: MemoryPolicy,
  batches: Batches,
  opts: RunStepsOptions = {},
): Promise<RunStepsResult> {
  const steps = opts.steps ?? (Array.isArray(batches) ? batches.length : 5);
  if (!Number.isInteger(steps) || steps < 1) {
    throw new Error(`runSteps: steps must be a positive integer, got ${steps}`);
  }
  const marker = dev.allocator.nextId;
  const runner = new StepRunner(dev, cfg, policy, batches, opts);
  try {
    for (let i = 0; i < steps; i++) await runner.step();
  } finally {
    runner.dispose();
  }
  const result = runner.finish();
  if (!opts.trainer) {
    // everything allocated since the build (nothing else runs meanwhile) must be freed
    const left = dev.allocator.liveSince(marker - 1);
    const bytes = left.reduce((a, t) => a + t.bytes, 0);
    if (bytes > 0 && (opts.leaks ?? "throw") === "throw") throw new LeakError(bytes, left);
    // per-step leaks are still live here too: count them once
    result.leakedBytes = Math.max(result.leakedBytes, bytes);
  }
  return result;
}
