/** The plan task's multi-GPU flags → a {@link ParallelPlan}: the ZeRO and Ulysses techniques' flags. */

import { type ParallelPlan, validateParallel } from "../sharding/parallel_plan.ts";
import type { ModelConfig } from "../config/model_config.ts";
import { ULYSSES } from "../techniques/ulysses.ts";
import { ZERO } from "../techniques/zero.ts";

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
export const PARALLEL_HELP: string = [ZERO.flags!.help, ULYSSES.flags!.help].join("\n");

/**
 * The parallel plan of the flags, or undefined when none is given (the single-device step).
 * `--zero`, `--sp` and the offloads without `--gpus` plan one GPU.
 */
export function parseParallel(flags: ParallelFlags, cfg?: ModelConfig): ParallelPlan | undefined {
  const values = flags as Record<string, unknown>;
  const plan = ULYSSES.flags!.apply(values, ZERO.flags!.apply(values, {})).parallel;
  if (plan) validateParallel(plan, cfg);
  return plan;
}
