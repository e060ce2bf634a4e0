/**
 * The memory planner: runs full training steps (forward, backward, AdamW) of a model on the
 * meta device — the same code as on WebGPU, without compute — and reports the peak bytes
 * and the per-tag breakdown at the peak. `maxSequence` searches (by bisection over whole
 * steps, not extrapolation) the largest S whose step fits a budget.
 */

import { OutOfMemoryError } from "../device/errors.ts";
import type { FloatCounting } from "../device/dtype.ts";
import { MetaDevice } from "../device/meta.ts";
import { type DriverOverhead, LAVAPIPE_OVERHEAD, overheadBytes } from "../device/overhead.ts";
import type { TagBytes } from "../device/errors.ts";
import type { ModelConfig } from "../models/config.ts";
import { Model, type MstPolicy } from "../models/model.ts";
import { Trainer } from "../train/trainer.ts";

/** What to plan. */
export interface PlanInput {
  /** The model. */
  cfg: ModelConfig;
  /** Sequence length S, in tokens. */
  seq: number;
  /** How float elements are counted (e.g. `"bf16"`). */
  dtype: FloatCounting;
  /** Mini-sequence policy. */
  mst: MstPolicy;
  /** Activation recomputation per decoder block. */
  checkpoint: boolean;
  /** Update each parameter and free its gradient as soon as it is complete. */
  optimizerInBackward: boolean;
  /** Unchunked head: ours, or transformers' with fp32 upcasts (default "standard"). */
  head?: "standard" | "hf";
  /** Budget in bytes (Infinity = none). */
  budget: number;
  /** Training steps to run (the second has the optimizer state live throughout; default 2). */
  steps?: number;
  /** The driver overhead to add (default lavapipe's, the one measured driver). */
  overhead?: DriverOverhead;
}

/** A plan. */
export interface Plan {
  /** Sequence length S, in tokens. */
  seq: number;
  /** True when the step fits the budget. */
  fits: boolean;
  /** Peak live bytes of the steps (at the failing allocation when it does not fit). */
  peakBytes: number;
  /** Live bytes per tag at the peak; sums to peakBytes. */
  breakdown: TagBytes;
  /** Bytes of the weights alone. */
  weightsBytes: number;
  /** Peak bytes of the device's pool (tensors' buffers and textures, uniform and readback buffers). */
  reservedBytes: number;
  /** Compute pipelines the steps compile. */
  pipelines: number;
  /** The driver's own bytes: {@link PlanInput.overhead} for {@link pipelines} pipelines. */
  overheadBytes: number;
  /** The driver the overhead is modelled for. */
  overheadDriver: string;
  /** The out-of-memory message when it does not fit. */
  error?: string;
}

/** Plans one configuration at one sequence length. */
export async function planStep(input: PlanInput): Promise<Plan> {
  const dev = new MetaDevice({ floats: input.dtype });
  dev.setBudget(input.budget);
  const tokens = Int32Array.from({ length: input.seq }, (_, i) => (i * 7919) % input.cfg.vocabSize);
  const batch = { ids: tokens, targets: tokens };
  let weightsBytes = 0;
  const overhead = input.overhead ?? LAVAPIPE_OVERHEAD;
  // Reserved bytes only grow during a plan (nothing releases the pool), so the peak since the
  // last step's reset is the peak of the whole plan.
  const device = () => ({
    reservedBytes: dev.allocator.stats().peakReservedBytes,
    pipelines: dev.pipelineCount,
    overheadBytes: overheadBytes(overhead, dev.pipelineCount),
    overheadDriver: overhead.driver,
  });
  try {
    const model = Model.build(dev, input.cfg, {
      checkpoint: input.checkpoint,
      mst: input.mst,
      head: input.head,
    });
    weightsBytes = dev.allocator.stats().liveByTag.weights;
    const trainer = new Trainer(dev, model, { optimizerInBackward: input.optimizerInBackward });
    let peakBytes = 0;
    let breakdown: TagBytes = {};
    for (let i = 0; i < (input.steps ?? 2); i++) {
      const r = await trainer.step(batch);
      if (r.peakBytes > peakBytes) {
        peakBytes = r.peakBytes;
        breakdown = r.breakdown;
      }
    }
    return { seq: input.seq, fits: true, peakBytes, breakdown, weightsBytes, ...device() };
  } catch (e) {
    if (!(e instanceof OutOfMemoryError)) throw e;
    const live = Object.values(e.liveByTag).reduce((a, b) => a + b, 0);
    const breakdown = { ...e.liveByTag };
    breakdown[e.tag] = (breakdown[e.tag] ?? 0) + e.requestedBytes;
    return {
      seq: input.seq,
      fits: false,
      peakBytes: live + e.requestedBytes,
      breakdown,
      weightsBytes,
      ...device(),
      error: e.message,
    };
  }
}

/** Result of {@link maxSequence}. */
export interface MaxSeqResult {
  /** Largest S that fits (0 if even S=1 does not). */
  maxSeq: number;
  /** The plan at maxSeq. */
  plan: Plan | null;
  /** Every probe (S, fits), in order. */
  probes: { seq: number; fits: boolean }[];
}

/**
 * Largest S whose training step fits `budget`, found by doubling then bisection to the
 * exact integer. Fitting is assumed monotonic in S.
 */
export async function maxSequence(
  input: Omit<PlanInput, "seq">,
  opts: { start?: number; limit?: number; granularity?: number } = {},
): Promise<MaxSeqResult> {
  if (!Number.isFinite(input.budget)) {
    throw new Error("--max-seq needs a finite --budget (e.g. --budget 80GiB)");
  }
  const probes: { seq: number; fits: boolean }[] = [];
  const plans = new Map<number, Plan>();
  const probe = async (seq: number) => {
    const p = await planStep({ ...input, seq });
    probes.push({ seq, fits: p.fits });
    plans.set(seq, p);
    return p.fits;
  };
  const limit = opts.limit ?? 1 << 22;
  const g = opts.granularity ?? 1;
  let lo = 0; // fits (0 = nothing known)
  let hi = opts.start ?? 1024; // candidate
  while (hi <= limit && await probe(hi)) {
    lo = hi;
    hi *= 2;
  }
  if (hi > limit) return { maxSeq: lo, plan: plans.get(lo) ?? null, probes };
  if (lo === 0) {
    if (!(await probe(1))) return { maxSeq: 0, plan: null, probes };
    lo = 1;
  }
  while (hi - lo > g) {
    const mid = Math.floor((lo + hi) / 2 / g) * g || lo + 1;
    if (mid <= lo || mid >= hi) break;
    if (await probe(mid)) lo = mid;
    else hi = mid;
  }
  return { maxSeq: lo, plan: plans.get(lo) ?? null, probes };
}
