/**
 * Like for like: the terms set beside a publication's figures are planned on its GPU (a
 * datacenter GPU: no lavapipe overhead, "fits" judged on what the device holds) and every ratio
 * divides two figures of one accounting profile ({@link sameProfileRatio} refuses otherwise).
 * Used by the experiments that print the paper's figures beside ours (llama3-long,
 * families-long).
 */

import type { FloatCounting } from "../device/dtype.ts";
import type { TagBytes } from "../device/errors.ts";
import type { ModelConfig } from "../config/model_config.ts";
import type { MemoryPolicy } from "../techniques/policy.ts";
import { OVERHEADS } from "../plan/gpus.ts";
import { type MaxSeqResult, maxSequence, type PlanInput, planStep } from "../plan/planner.ts";
import type { Profile } from "./types.ts";

/** The accounting profile a policy is counted under. */
export function profileOf(policy: MemoryPolicy): Profile {
  return policy.framework === "hf" ? "hf" : "ours";
}

/** A term's figure with its policy. */
export interface Term {
  /** The policy counted. */
  policy: MemoryPolicy;
  /** Its figure (null: none). */
  value: number | null;
}

/**
 * `num / den` to `digits` decimals, refused when the two terms are counted under different
 * profiles (the mixed comparison this module exists to prevent); null when a term is missing or
 * the denominator is 0.
 */
export function sameProfileRatio(num: Term, den: Term, digits = 2): number | null {
  const [a, b] = [profileOf(num.policy), profileOf(den.policy)];
  if (a !== b) throw new Error(`a ratio of a ${a} figure over a ${b} figure mixes two profiles`);
  if (num.value === null || den.value === null || den.value === 0) return null;
  const k = 10 ** digits;
  return Math.round(k * num.value / den.value) / k;
}

/**
 * {@link sameProfileRatio} of two terms of `terms` (policies by id) from their figures
 * `values`.
 */
export function termRatio(
  terms: Readonly<Record<string, { policy: MemoryPolicy }>>,
  values: Readonly<Record<string, number | null>>,
  num: string,
  den: string,
  digits = 2,
): number | null {
  const t = (id: string) => ({ policy: terms[id].policy, value: values[id] ?? null });
  return sameProfileRatio(t(num), t(den), digits);
}

/** {@link maxSequence} on a datacenter GPU: no driver overhead, the device's reserve judged. */
export function maxSeqOnGpu(
  input: Omit<PlanInput, "seq" | "overhead">,
  opts: Parameters<typeof maxSequence>[1] = {},
): Promise<MaxSeqResult> {
  return maxSequence({ ...input, overhead: OVERHEADS.none }, opts);
}

/** A term planned on a datacenter GPU: its longest S and its peak at one S. */
export interface PlannedTerm {
  /** Longest S within the budget. */
  maxSeq: number;
  /** What stopped the search. */
  limitedBy: string;
  /** Peak at `seq` (no budget): PyTorch's peak allocated under hf, live bytes under ours. */
  peakBytes: number;
  /** Live bytes per tag at that peak. */
  breakdown: TagBytes;
  /** The phase of that peak (`forward`, `backward`, `optimizer`). */
  peakPhase: string;
}

/**
 * Plans one term on a datacenter GPU of `budget` bytes (no driver overhead): its longest S
 * (exact to `granularity` tokens) and its peak at `seq`.
 */
export async function planTerm(
  input: { cfg: ModelConfig; policy: MemoryPolicy; dtype: FloatCounting; budget: number },
  seq: number,
  granularity = 1,
): Promise<PlannedTerm> {
  const base = { ...input, overhead: OVERHEADS.none };
  const r = await maxSequence(base, { granularity });
  const p = await planStep({ ...base, budget: Infinity, seq });
  return {
    maxSeq: r.maxSeq,
    limitedBy: r.limitedBy,
    peakBytes: p.hf ? p.hf.allocatedPeakBytes : p.peakBytes,
    breakdown: p.breakdown,
    peakPhase: p.peakPhase,
  };
}
