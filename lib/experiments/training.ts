/**
 * What several experiments do at each point: train a model at one S on fresh batches from
 * seeded weights ({@link trainAt}), and read the planned GPU of their config
 * ({@link planTarget}).
 */

import type { ModelConfig } from "../config/model_config.ts";
import type { Device } from "../device/device.ts";
import { type FloatCounting, parseBytes } from "../device/dtype.ts";
import { parseDtype } from "../cli/args.ts";
import type { MemoryPolicy } from "../techniques/policy.ts";
import { makeBatches } from "../train/data_source.ts";
import { runSteps, type RunStepsOptions, type RunStepsResult } from "../train/run_steps.ts";

/** A training point: the data source, the seed of the weights and batches, and the steps. */
export interface TrainAtOptions extends Omit<RunStepsOptions, "init" | "steps" | "trainer"> {
  /** Data source of `makeBatches`: "repeat" or "brown". */
  data: string;
  /** Seed of the weights and of the batches. */
  seed: number;
  /** Steps to run. */
  steps: number;
}

/**
 * `runSteps` of `cfg` under `policy` at S = `seq`: batches of `data` drawn with `seed`, weights
 * initialized with `seed` (every policy of an experiment then sees the same batches from the
 * same weights).
 */
export async function trainAt(
  dev: Device,
  cfg: ModelConfig,
  policy: MemoryPolicy,
  seq: number,
  options: TrainAtOptions,
): Promise<RunStepsResult> {
  const { data, seed, ...opts } = options;
  const batches = await makeBatches(data, cfg, seq, seed);
  return await runSteps(dev, cfg, policy, batches, { ...opts, init: { seed } });
}

/** How the planner counts floats and the planned GPU's memory. */
export interface PlanTarget {
  /** How floats are counted. */
  dtype: FloatCounting;
  /** Device memory in bytes. */
  budget: number;
}

/** The planned GPU of an experiment's config keys `planDtype` (f32/f16/bf16) and `budget` (bytes). */
export function planTarget(config: { planDtype: string; budget: string }): PlanTarget {
  return { dtype: parseDtype(config.planDtype, "planDtype"), budget: parseBytes(config.budget) };
}
