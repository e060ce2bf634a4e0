/**
 * The claims ledger's types and the shared computation: every published figure the workbench
 * sets beside its own is a {@link ClaimDef}; {@link runClaim} computes it into a
 * {@link ClaimResult} with a status, a tolerance and a sensitivity.
 */

import type { FloatCounting } from "../device/dtype.ts";
import type { MemoryPolicy } from "../techniques/policy.ts";
import { getPreset } from "../config/presets.ts";
import { type MaxSeqResult, maxSequence, type Plan, planStep } from "../plan/planner.ts";
import { GPUS, type OverheadName, OVERHEADS } from "../plan/gpus.ts";

/** What a ledger entry's status can be. */
export type ClaimStatus = "reproduced" | "differs" | "non-discriminating" | "not modelled";

/** The accounting profile of a term: Hugging Face transformers + PyTorch, or our runtime. */
export type Profile = "hf" | "ours";

/** The exact setup of an entry. */
export interface ClaimSetup {
  /** Model preset. */
  preset: string;
  /** How floats are counted. */
  dtype: FloatCounting;
  /** The GPU profile (lib/plan/gpus.ts) whose memory is the budget. */
  gpu: string;
  /** Budget per device, e.g. "80 GiB". */
  budget: string;
  /** Overhead counted (lib/plan/gpus.ts OVERHEADS). */
  overhead: OverheadName;
  /** Micro-batch. */
  batch: number;
  /** The policy of each term, described. */
  policy: string;
  /** GPUs. */
  gpus: number;
  /** S, when the figure is at a given S. */
  seq?: number;
}

/** How much ours moves. */
export interface Sensitivity {
  /** Relative change of the peak behind ours when S doubles (null: not applicable). */
  sDoubled: number | null;
  /** Relative change of ours when the activation bytes change by 10% (null: not applicable). */
  activations10: number | null;
  /** True when neither moves: the entry checks fixed memory only. */
  fixedMemoryOnly: boolean;
  /** How it was computed. */
  method: string;
}

/** What a definition's compute returns. */
export interface ComputeOut {
  /** Our figure, in the entry's unit (null: not modelled). */
  ours: number | null;
  /** Our figure as printed (e.g. "62,912" or "12.3×"; a range). */
  oursLabel: string;
  /** What stopped our search (max-S entries), or null. */
  limitedBy: string | null;
  /** The sensitivity. */
  sensitivity: Sensitivity;
  /** Our runtime's own figure beside it, labelled ours (when the entry's profile is hf). */
  ourRuntime?: { value: number; label: string; profile: "ours" } | null;
  /** Findings (e.g. memory alone gives X because Y). */
  notes: string[];
  /** Overrides the tolerance check: a value within it by another measure (ranges). */
  within?: boolean;
}

/** One published figure and how to compute ours. */
export interface ClaimDef {
  /** Stable id. */
  id: string;
  /** The publication. */
  source: string;
  /** Where in it: section, table, figure or repository file. */
  location: string;
  /** The claim, short. */
  claim: string;
  /** The published figure (null when it is not a number). */
  published: number | null;
  /** The published figure as printed. */
  publishedLabel: string;
  /** The unit: tokens, GiB, × or — (qualitative). */
  unit: "tokens" | "GiB" | "×" | "—";
  /** The setup. */
  setup: ClaimSetup;
  /** The accounting profile of each term (a ratio has two). */
  profiles: Record<string, Profile>;
  /** Relative tolerance and why. */
  tolerance: { rel: number; reason: string };
  /** The term that explains a difference, when ours lies outside the tolerance. */
  ifDiffers: string;
  /** Computes ours. */
  compute(ctx: LedgerContext): Promise<ComputeOut>;
}

/** A computed entry. */
export interface ClaimResult {
  /** Stable id. */
  id: string;
  /** The publication. */
  source: string;
  /** Where in it. */
  location: string;
  /** The claim, short. */
  claim: string;
  /** The published figure (null when it is not a number). */
  published: number | null;
  /** The published figure as printed. */
  publishedLabel: string;
  /** The unit: tokens, GiB, × or —. */
  unit: string;
  /** Our figure under the entry's profiles (null: not modelled). */
  ours: number | null;
  /** Our figure as printed. */
  oursLabel: string;
  /** ours / published (null when either is not a number). */
  ratio: number | null;
  /** Relative tolerance and why. */
  tolerance: { rel: number; reason: string };
  /** reproduced / differs / non-discriminating / not modelled. */
  status: ClaimStatus;
  /** With `differs`: the term that explains it. */
  explains: string | null;
  /** The exact setup. */
  setup: ClaimSetup;
  /** The accounting profile of each term. */
  profiles: Record<string, Profile>;
  /** What stopped our search, or null. */
  limitedBy: string | null;
  /** How much ours moves with S and with the activation bytes. */
  sensitivity: Sensitivity;
  /** Our runtime's figure beside it, labelled ours, or null. */
  ourRuntime: { value: number; label: string; profile: "ours" } | null;
  /** Findings. */
  notes: string[];
}

/** Below this relative move, a figure is taken as not moving. */
export const NO_MOVE = 1e-3;

/** Memoized searches and plans shared by the entries of one ledger run. */
export class LedgerContext {
  readonly #cache = new Map<string, Promise<unknown>>();

  #memo<T>(key: string, f: () => Promise<T>): Promise<T> {
    if (!this.#cache.has(key)) this.#cache.set(key, f());
    return this.#cache.get(key) as Promise<T>;
  }

  /** The budget and overhead of a setup. */
  target(setup: Pick<ClaimSetup, "gpu" | "overhead">): {
    budget: number;
    overhead: typeof OVERHEADS[OverheadName];
  } {
    return { budget: GPUS[setup.gpu].memoryBytes, overhead: OVERHEADS[setup.overhead] };
  }

  /** The longest S of a policy (memoized), exact to `granularity` tokens. */
  maxSeq(
    setup: Pick<ClaimSetup, "preset" | "dtype" | "gpu" | "overhead">,
    policy: MemoryPolicy,
    opts: {
      granularity?: number;
      start?: number;
      budget?: number;
      limits?: { maxStorageBufferBindingSize: number };
    } = {},
  ): Promise<MaxSeqResult> {
    const t = this.target(setup);
    const budget = opts.budget ?? t.budget;
    const key = JSON.stringify(["max", setup.preset, setup.dtype, setup.overhead, policy, {
      ...opts,
      budget,
    }]);
    return this.#memo(key, () =>
      maxSequence({
        cfg: getPreset(setup.preset),
        policy,
        dtype: setup.dtype,
        budget,
        overhead: t.overhead,
        ...(opts.limits ? { limits: opts.limits } : {}),
      }, { granularity: opts.granularity ?? 64, start: opts.start }));
  }

  /** One plan at S (memoized), within the setup's budget. */
  plan(
    setup: Pick<ClaimSetup, "preset" | "dtype" | "gpu" | "overhead">,
    policy: MemoryPolicy,
    seq: number,
    budget?: number,
  ): Promise<Plan> {
    const t = this.target(setup);
    const b = budget ?? t.budget;
    const key = JSON.stringify(["plan", setup.preset, setup.dtype, setup.overhead, policy, seq, b]);
    return this.#memo(key, () =>
      planStep({
        cfg: getPreset(setup.preset),
        policy,
        seq,
        dtype: setup.dtype,
        budget: b,
        overhead: t.overhead,
      }));
  }
}

/** Bytes at a plan's peak that are not weights, gradients or optimizer state. */
function activationBytes(plan: Plan): number {
  return plan.peakBytes - plan.fixedBytes;
}

/** Groups an integer with commas: 62912 → "62,912". */
export function thousands(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/**
 * The sensitivity of a max-S figure: the peak at 2·S against the peak at S (no budget), and the
 * S found when the activation bytes grow 10% — modelled as the budget less 10% of the non-fixed
 * bytes at the peak (exact when the peak's phase and composition stay).
 */
export async function maxSeqSensitivity(
  ctx: LedgerContext,
  setup: ClaimSetup,
  policy: MemoryPolicy,
  r: MaxSeqResult,
  granularity = 64,
  limits?: { maxStorageBufferBindingSize: number },
): Promise<Sensitivity> {
  if (!r.plan || r.maxSeq === 0) {
    return { sDoubled: null, activations10: null, fixedMemoryOnly: false, method: "no plan" };
  }
  const at = r.plan;
  const twice = await ctx.plan(setup, policy, 2 * r.maxSeq, Infinity);
  const once = await ctx.plan(setup, policy, r.maxSeq, Infinity);
  const budget = ctx.target(setup).budget - 0.1 * activationBytes(at);
  const start = Math.max(granularity, Math.floor(r.maxSeq * 0.8 / granularity) * granularity);
  const moved = await ctx.maxSeq(setup, policy, {
    granularity,
    budget,
    start,
    ...(limits ? { limits } : {}),
  });
  // a step at 2S that cannot run (a binding or index limit) has no peak to compare
  const sDoubled = twice.fits ? twice.peakBytes / once.peakBytes - 1 : null;
  const activations10 = moved.maxSeq / r.maxSeq - 1;
  return {
    sDoubled,
    activations10,
    fixedMemoryOnly: sDoubled !== null && Math.abs(sDoubled) < NO_MOVE &&
      Math.abs(activations10) < NO_MOVE,
    method: "S doubled: peak at 2S / peak at S (no budget; none when 2S cannot run); " +
      "activations +10%: max S again with the budget less 10% of the non-fixed bytes at the peak",
  };
}

/** Judges a computed entry. */
export function judge(def: ClaimDef, out: ComputeOut): ClaimResult {
  const ratio = def.published !== null && out.ours !== null ? out.ours / def.published : null;
  let status: ClaimStatus;
  let explains: string | null = null;
  if (out.ours === null) status = "not modelled";
  else if (
    out.sensitivity.fixedMemoryOnly ||
    (out.sensitivity.activations10 !== null && Math.abs(out.sensitivity.activations10) < NO_MOVE)
  ) status = "non-discriminating";
  else if (out.within ?? (ratio !== null && Math.abs(ratio - 1) <= def.tolerance.rel)) {
    status = "reproduced";
  } else {
    status = "differs";
    explains = def.ifDiffers;
  }
  return {
    id: def.id,
    source: def.source,
    location: def.location,
    claim: def.claim,
    published: def.published,
    publishedLabel: def.publishedLabel,
    unit: def.unit,
    ours: out.ours,
    oursLabel: out.oursLabel,
    ratio,
    tolerance: def.tolerance,
    status,
    explains,
    setup: def.setup,
    profiles: def.profiles,
    limitedBy: out.limitedBy,
    sensitivity: out.sensitivity,
    ourRuntime: out.ourRuntime ?? null,
    notes: out.notes,
  };
}
