/** The plan task's multi-GPU flags → a {@link ParallelPlan} (the one flag → parallel parser). */

import { type ParallelPlan, validateParallel, type ZeroStage } from "../sharding/parallel_plan.ts";
import type { ModelConfig } from "../config/model_config.ts";
import { parsePositiveInt } from "./args.ts";

/** `parseArgs` options of the multi-GPU flags. */
export const PARALLEL_OPTIONS = {
  gpus: { type: "string" },
  zero: { type: "string" },
  sp: { type: "string" },
  "offload-optimizer": { type: "boolean" },
  "offload-params": { type: "boolean" },
} as const;

/** The multi-GPU flags as parsed. */
export interface ParallelFlags {
  gpus?: string;
  zero?: string;
  sp?: string;
  "offload-optimizer"?: boolean;
  "offload-params"?: boolean;
}

/** Help lines of the multi-GPU flags. */
export const PARALLEL_HELP =
  `  --gpus N        plan one rank of N GPUs (its real share of the step on the meta device)
  --zero 0|1|2|3  ZeRO stage: shard AdamW state (1), + gradients (2), + parameters (3) 1/N
  --sp K          Ulysses sequence parallelism: S/K tokens per rank, attention over all S for
                  H/K heads (K divides the heads; KV heads replicated when K > KV); S % K = 0
  --offload-optimizer  AdamW state (and ZeRO's gradient partitions) on the host (needs --zero)
  --offload-params     ZeRO-3 parameter partitions on the host (needs --zero 3)`;

/**
 * The parallel plan of the flags, or undefined when none is given (the single-device step).
 * `--zero`, `--sp` and the offloads without `--gpus` plan one GPU.
 */
export function parseParallel(flags: ParallelFlags, cfg?: ModelConfig): ParallelPlan | undefined {
  const any = flags.gpus !== undefined || flags.zero !== undefined || flags.sp !== undefined ||
    flags["offload-optimizer"] || flags["offload-params"];
  if (!any) return undefined;
  const zero = flags.zero === undefined ? 0 : Number(flags.zero);
  if (![0, 1, 2, 3].includes(zero) || flags.zero?.trim() === "") {
    throw new Error(`--zero must be 0, 1, 2 or 3, got "${flags.zero}"`);
  }
  const plan: ParallelPlan = {
    gpus: parsePositiveInt("--gpus", flags.gpus, 1),
    zero: zero as ZeroStage,
    sp: parsePositiveInt("--sp", flags.sp, 1),
    offloadOptimizer: flags["offload-optimizer"] ?? false,
    offloadParams: flags["offload-params"] ?? false,
  };
  validateParallel(plan, cfg);
  return plan;
}
