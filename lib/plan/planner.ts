/**
 * The memory planner: runs full training steps (forward, backward, AdamW) of a model on the
 * meta device — the same code as on WebGPU, without compute — and reports the peak bytes
 * and the per-tag breakdown at the peak. `maxSequence` searches (by bisection over whole
 * steps, not extrapolation) the largest S whose step fits a budget.
 *
 * Under the Hugging Face profile (`policy.framework: "hf"`) the meta device's allocations also
 * go through a model of PyTorch's CUDA caching allocator (`caching_allocator.ts`), which decides
 * whether the step fits (reserved segments within the budget), and the plan reports its figures
 * and the profile's extra buffers (`hf_profile.ts`).
 */

import { checkBudget, checkSeq } from "../util/validate.ts";
import { BindingLimitError, IndexRangeError, OutOfMemoryError } from "../device/errors.ts";
import type { FloatCounting } from "../device/dtype.ts";
import { MetaDevice } from "../device/meta.ts";
import type { DeviceLimits } from "../device/device.ts";
import { type DriverOverhead, LAVAPIPE_OVERHEAD, overheadBytes } from "../device/overhead.ts";
import type { TagBytes } from "../device/errors.ts";
import type { ModelConfig } from "../config/model_config.ts";
import type { ResolvedChunks } from "../models/model.ts";
import { describePolicy, type MemoryPolicy } from "../techniques/policy.ts";
import { formatBytes } from "../device/dtype.ts";
import { largestTag, runSteps } from "../train/run_steps.ts";
import {
  describeParallel,
  isSingleDevice,
  normalizeParallel,
  type ParallelPlan,
  validateParallel,
  ZERO3_PREFETCH_LAYERS,
} from "../sharding/parallel_plan.ts";
import { parameterShapes } from "../config/derived.ts";
import { zeroHostBytes } from "../sharding/zero.ts";
import { OVERHEADS } from "./gpus.ts";
import type { HFPlanFigures } from "../profiles/hf/extras.ts";
import type { ProfileAccounting } from "../profiles/profile.ts";
import { accountingProfile, type Framework } from "../profiles/registry.ts";

/** What to plan. */
export interface PlanInput {
  /** The model. */
  cfg: ModelConfig;
  /** The memory policy. */
  policy: MemoryPolicy;
  /** Sequence length S, in tokens. */
  seq: number;
  /** How float elements are counted (e.g. `"bf16"`). */
  dtype: FloatCounting;
  /** Budget in bytes (Infinity = none). */
  budget: number;
  /** Training steps to run (the second has the optimizer state live throughout; default 2). */
  steps?: number;
  /**
   * Device limits of the meta device (default: none, a datacenter GPU); pass a WebGPU
   * device's `limits` to plan for that device exactly.
   */
  limits?: Partial<DeviceLimits>;
  /**
   * The driver overhead to add (default: lavapipe's, the one measured driver, for our runtime;
   * none under the HF profile, which models PyTorch on a CUDA GPU). Plans for a datacenter GPU
   * pass its profile's (`lib/plan/gpus.ts`). It counts against the budget.
   */
  overhead?: DriverOverhead;
  /**
   * What "fits" is judged on: `device` (default) needs the live bytes and what the device must
   * hold ({@link Plan.deviceBytes}) within the budget; `live` only the live bytes, as a device
   * whose allocator enforces a live-bytes budget (`dev.setBudget`) does.
   */
  fitOn?: "device" | "live";
}

/** Why a plan does not fit (see {@link Plan.failure}). */
export type PlanFailure = "memory" | "reserve" | "binding" | "index";

/** Tags whose bytes do not depend on S: weights, their gradients and AdamW's moments. */
export const FIXED_TAGS = ["weights", "grads", "optimizer"] as const;

/** What a multi-GPU plan's rank is (present only when `policy.parallel` is not one device). */
export interface RankInfo {
  /** {@link describeParallel} of the plan. */
  description: string;
  /** The parallel settings, defaults filled in. */
  parallel: Required<ParallelPlan>;
  /** Tokens this rank runs through embedding, norms, MLP and head: S / K. */
  tokensPerRank: number;
  /** Bytes the rank keeps on the host (offloaded optimizer state / parameter partitions). */
  hostBytes: number;
  /** ZeRO-3 gathers: layers prefetched ahead of the running one. */
  prefetchLayers: number;
}

/** A plan. */
export interface Plan {
  /** {@link describePolicy} of the planned policy. */
  policy: string;
  /** Sequence length S, in tokens. */
  seq: number;
  /**
   * True when the step fits the budget: its live bytes, and what the device must hold
   * ({@link deviceBytes}: the pool reserve of our runtime, or PyTorch's reserved segments under
   * the HF profile, plus the overhead) stay within it.
   */
  fits: boolean;
  /** Peak live bytes of the steps (at the failing allocation when it does not fit). */
  peakBytes: number;
  /** Live bytes per tag at the peak; sums to peakBytes. */
  breakdown: TagBytes;
  /** Phase of the peak: `forward`, `backward` or `optimizer` (`other` between phases). */
  peakPhase: string;
  /**
   * Peak live bytes of each phase (when it does not fit: of the failing step, the failing
   * phase counting the failed request).
   */
  phasePeaks: Record<string, number>;
  /** The tag holding the most bytes at the peak. */
  largestTag: string;
  /** Bytes of {@link FIXED_TAGS} at the peak: memory no sequence-length technique lowers. */
  fixedBytes: number;
  /** Bytes of the weights alone. */
  weightsBytes: number;
  /** The M run per part (`null`: unchunked; absent when the step did not fit). */
  chunks?: ResolvedChunks;
  /** Warnings of the run (e.g. an M above S). */
  warnings: string[];
  /** Peak bytes of the device's pool (tensors' buffers and textures, uniform, readback and upload buffers). */
  reservedBytes: number;
  /**
   * Peak bytes held in host memory (tag `host`: block checkpoints under the `offload` policy;
   * 0 otherwise). Outside `peakBytes`, `breakdown` and the budget.
   */
  hostPeakBytes: number;
  /** Compute pipelines the steps compile. */
  pipelines: number;
  /** The driver's own bytes: {@link PlanInput.overhead} for {@link pipelines} pipelines. */
  overheadBytes: number;
  /** The driver the overhead is modelled for. */
  overheadDriver: string;
  /**
   * What the device must hold: {@link reservedBytes} (ours) or PyTorch's
   * `max_memory_reserved` (`hf`), plus {@link overheadBytes}. `fits` needs it within the budget.
   */
  deviceBytes: number;
  /** What {@link deviceBytes} counts as the reserve: `pool` (ours) or `caching allocator` (hf). */
  deviceReserve: "pool" | "caching allocator";
  /** Whose allocations were counted (the policy's `framework`; default `"ours"`). */
  framework: Framework;
  /**
   * Under `framework: "hf"`: PyTorch's caching allocator figures and the extra buffers (the
   * step fits when the allocator's segments stay within the budget).
   */
  hf?: HFPlanFigures;
  /** The out-of-memory message when it does not fit. */
  error?: string;
  /** The planned rank of a multi-GPU plan (absent for one device). */
  rank?: RankInfo;
  /**
   * Why a step that does not fit fails: `memory` (live bytes above the budget, or PyTorch's
   * caching allocator out of memory), `reserve` (live bytes fit but what the device must hold,
   * {@link deviceBytes}, does not), `binding` (a tensor above the `limits`' binding size) or
   * `index` (a count past the kernels' 32-bit indices).
   */
  failure?: PlanFailure;
}

/**
 * The rank of a multi-GPU policy (null for one device): checks the plan against the model and
 * S (S must be a multiple of the SP degree K, as DeepSpeed requires).
 */
function rankOf(
  input: Pick<PlanInput, "cfg" | "policy" | "dtype">,
  seq: number,
): RankInfo | null {
  if (isSingleDevice(input.policy.parallel)) return null;
  const parallel = normalizeParallel(input.policy.parallel!);
  validateParallel(parallel, input.cfg);
  if (seq % parallel.sp !== 0) {
    throw new Error(
      `S = ${seq} must be a multiple of the SP degree ${parallel.sp} (each rank holds S/K tokens); ` +
        `use S = ${Math.ceil(seq / parallel.sp) * parallel.sp}`,
    );
  }
  return {
    description: describeParallel(parallel),
    parallel,
    tokensPerRank: seq / parallel.sp,
    hostBytes: zeroHostBytes(
      parameterShapes(input.cfg).map((p) => p.shape),
      parallel,
      input.dtype === "f32" ? 4 : 2,
    ),
    prefetchLayers: ZERO3_PREFETCH_LAYERS,
  };
}

/** Bytes of {@link FIXED_TAGS} in a breakdown. */
export function fixedBytes(breakdown: TagBytes): number {
  return FIXED_TAGS.reduce((a, t) => a + (breakdown[t] ?? 0), 0);
}

/** Plans one configuration at one sequence length. */
export async function planStep(input: PlanInput): Promise<Plan> {
  checkSeq("planStep", input.seq);
  checkBudget("planStep", input.budget);
  const rank = rankOf(input, input.seq);
  const dev = new MetaDevice({ floats: input.dtype, limits: input.limits });
  dev.setBudget(input.budget);
  const framework = input.policy.framework ?? "ours";
  const profile = accountingProfile(framework);
  // a profile modelled on a CUDA GPU (hf) has no lavapipe driver overhead
  const overhead = input.overhead ??
    (profile.defaultOverhead === "none" ? OVERHEADS.none : LAVAPIPE_OVERHEAD);
  // the profile's allocator model (PyTorch's caching allocator for hf) shares the device with
  // the overhead (a CUDA context, …): its fixed part comes off the allocator's capacity
  const hf = profile.attachAccounting(
    dev.allocator,
    Math.max(0, input.budget - overhead.fixedBytes),
  ) as ProfileAccounting<HFPlanFigures> | null;
  const tokens = Int32Array.from(
    { length: rank ? rank.tokensPerRank : input.seq },
    (_, i) => (i * 7919) % input.cfg.vocabSize,
  );
  const warnings: string[] = [];
  const policy = describePolicy(input.policy);
  // Reserved bytes only grow during a plan (nothing releases the pool), so the peak since the
  // last step's reset is the peak of the whole plan.
  const device = () => {
    const figures = hf?.figures();
    const reservedBytes = dev.allocator.stats().peakReservedBytes;
    const over = overheadBytes(overhead, dev.pipelineCount);
    return {
      reservedBytes,
      hostPeakBytes: dev.allocator.stats().hostPeakBytes,
      pipelines: dev.pipelineCount,
      overheadBytes: over,
      overheadDriver: overhead.driver,
      deviceBytes: (figures ? figures.reservedPeakBytes : reservedBytes) + over,
      deviceReserve: figures ? "caching allocator" as const : "pool" as const,
      framework,
      ...(figures ? { hf: figures } : {}),
    };
  };
  try {
    const r = await runSteps(dev, input.cfg, input.policy, { ids: tokens, targets: tokens }, {
      steps: input.steps ?? 2,
      onWarning: (w) => warnings.push(w),
    });
    const held = device();
    const over = (input.fitOn ?? "device") === "device" && held.deviceBytes > input.budget;
    return {
      policy,
      seq: input.seq,
      fits: !over,
      peakBytes: r.peakBytes,
      breakdown: r.breakdown,
      peakPhase: r.peakPhase,
      phasePeaks: r.phasePeaks,
      largestTag: r.largestTag,
      fixedBytes: fixedBytes(r.breakdown),
      weightsBytes: r.breakdown.weights ?? 0,
      chunks: r.chunks,
      warnings,
      ...held,
      ...(rank ? { rank } : {}),
      ...(over
        ? {
          error: `live bytes fit, but the device must hold ${formatBytes(held.deviceBytes)} ` +
            `(${held.deviceReserve} ${formatBytes(held.deviceBytes - held.overheadBytes)} + ` +
            `${held.overheadDriver} overhead ${formatBytes(held.overheadBytes)}), above the ` +
            `budget ${formatBytes(input.budget)}`,
          failure: "reserve" as const,
        }
        : {}),
    };
  } catch (e) {
    if (e instanceof BindingLimitError || e instanceof IndexRangeError) {
      // a tensor above the limit a kernel may bind (`limits`), or a count past the kernels'
      // 32-bit indices: the step cannot run at this S
      const s = dev.allocator.stats();
      return {
        policy,
        seq: input.seq,
        fits: false,
        peakBytes: s.peakBytes,
        breakdown: s.peakBreakdown,
        peakPhase: s.peakPhase || "other",
        phasePeaks: s.phasePeaks,
        largestTag: largestTag(s.peakBreakdown),
        fixedBytes: fixedBytes(s.peakBreakdown),
        weightsBytes: s.peakBreakdown.weights ?? 0,
        warnings,
        ...device(),
        error: e.message,
        ...(rank ? { rank } : {}),
        failure: e instanceof BindingLimitError ? "binding" as const : "index" as const,
      };
    }
    if (!(e instanceof OutOfMemoryError)) throw e;
    const live = Object.values(e.liveByTag).reduce((a, b) => a + b, 0);
    const breakdown = { ...e.liveByTag };
    breakdown[e.tag] = (breakdown[e.tag] ?? 0) + e.requestedBytes;
    const phase = dev.allocator.phase || "other";
    const phasePeaks: Record<string, number> = {};
    for (const [p, b] of Object.entries(dev.allocator.stats().phasePeaks)) {
      phasePeaks[p || "other"] = Math.max(phasePeaks[p || "other"] ?? 0, b);
    }
    phasePeaks[phase] = Math.max(phasePeaks[phase] ?? 0, live + e.requestedBytes);
    return {
      policy,
      seq: input.seq,
      fits: false,
      peakBytes: live + e.requestedBytes,
      breakdown,
      peakPhase: phase,
      phasePeaks,
      largestTag: largestTag(breakdown),
      fixedBytes: fixedBytes(breakdown),
      weightsBytes: e.liveByTag.weights ?? 0,
      warnings,
      ...device(),
      error: e.message,
      ...(rank ? { rank } : {}),
      failure: "memory",
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
  /**
   * What stopped the search: the failure of the smallest S that does not fit (see
   * {@link Plan.failure}), or `search limit` when every probe up to the limit fit.
   */
  limitedBy: PlanFailure | "search limit";
  /** The smallest S that did not fit and why (absent when every probe fit). */
  stoppedAt?: { seq: number; error: string };
}

/**
 * Largest S whose training step fits `budget`, found by doubling then bisection to the
 * exact integer. Fitting is assumed monotonic in S.
 */
export async function maxSequence(
  input: Omit<PlanInput, "seq">,
  opts: { start?: number; limit?: number; granularity?: number } = {},
): Promise<MaxSeqResult> {
  checkBudget("maxSequence", input.budget);
  if (opts.start !== undefined) checkSeq("maxSequence", opts.start, "start");
  if (!Number.isFinite(input.budget)) {
    throw new Error("--max-seq needs a finite --budget (e.g. --budget 80GiB)");
  }
  const probes: { seq: number; fits: boolean }[] = [];
  const plans = new Map<number, Plan>();
  let firstFail: Plan | null = null;
  const probe = async (seq: number) => {
    const p = await planStep({ ...input, seq });
    probes.push({ seq, fits: p.fits });
    plans.set(seq, p);
    if (!p.fits && (!firstFail || seq < firstFail.seq)) firstFail = p;
    return p.fits;
  };
  const result = (maxSeq: number): MaxSeqResult => ({
    maxSeq,
    plan: plans.get(maxSeq) ?? null,
    probes,
    limitedBy: (firstFail as Plan | null)?.failure ?? "search limit",
    ...(firstFail
      ? { stoppedAt: { seq: (firstFail as Plan).seq, error: (firstFail as Plan).error ?? "" } }
      : {}),
  });
  // a rank holds S/K tokens: S moves in steps of K, and the search reaches K times further
  const sp = isSingleDevice(input.policy.parallel)
    ? 1
    : normalizeParallel(input.policy.parallel!).sp;
  const limit = opts.limit ?? (1 << 22) * sp;
  const g = Math.max(opts.granularity ?? 1, sp);
  if (opts.start !== undefined && opts.start % sp !== 0) {
    throw new Error(`the search start S = ${opts.start} must be a multiple of the SP degree ${sp}`);
  }
  let lo = 0; // fits (0 = nothing known)
  let hi = opts.start ?? Math.ceil(1024 / sp) * sp; // candidate
  while (hi <= limit && await probe(hi)) {
    lo = hi;
    hi *= 2;
  }
  if (hi > limit) return result(lo);
  if (lo === 0) {
    if (!(await probe(g))) return result(0);
    lo = g;
  }
  while (hi - lo > g) {
    const mid = Math.floor((lo + hi) / 2 / g) * g || lo + 1;
    if (mid <= lo || mid >= hi) break;
    if (await probe(mid)) lo = mid;
    else hi = mid;
  }
  return result(lo);
}
