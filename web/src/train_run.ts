/**
 * The training page's run, shared with its Deno twin (`tests/web_train_test.ts`): a tiny preset
 * trained with `runSteps` on consecutive windows of a shipped Brown slice, so a browser's
 * WebGPU and Deno's run the very same steps on the very same tokens.
 */

import type { Device } from "../../lib/device/device.ts";
import type { Batch } from "../../lib/models/model.ts";
import { getPreset } from "../../lib/config/presets.ts";
import { type MemoryPolicy, POLICIES } from "../../lib/techniques/policy.ts";
import { runSteps, type RunStepsResult, type StepRecord } from "../../lib/train/run_steps.ts";

/** Tokens of the Brown slice the build ships (`brown.json`). */
export const BROWN_SLICE_TOKENS = 16384;

/** What one training run is. */
export interface TrainSpec {
  /** A tiny preset (default llama3-tiny). */
  preset?: string;
  /** Sequence length S. */
  seq: number;
  /** Optimizer steps. */
  steps: number;
  /** "standard" or "mst" (MsT + recomputation, the paper's). */
  policy: "standard" | "mst";
  /** Initialization seed. */
  seed?: number;
}

/** The `index`-th window of S + 1 tokens: ids and next-token targets. */
export function window(tokens: ArrayLike<number>, seq: number, index: number): Batch {
  const n = Math.floor((tokens.length - 1) / seq);
  if (n < 1) throw new Error(`the Brown slice (${tokens.length} tokens) is shorter than S=${seq}`);
  const start = (index % n) * seq;
  const ids = new Int32Array(seq);
  const targets = new Int32Array(seq);
  for (let i = 0; i < seq; i++) {
    ids[i] = tokens[start + i];
    targets[i] = tokens[start + i + 1];
  }
  return { ids, targets };
}

/** The memory policy of a spec. */
function trainPolicy(name: TrainSpec["policy"]): MemoryPolicy {
  return name === "mst" ? { ...POLICIES.mst, mst: { mlp: 2, head: 2 } } : POLICIES.standard;
}

/** Trains `spec` on `dev`; `onStep` sees each step (loss, ms, live memory) as it ends. */
export function trainTiny(
  dev: Device,
  tokens: ArrayLike<number>,
  spec: TrainSpec,
  onStep?: (s: StepRecord) => void | Promise<void>,
): Promise<RunStepsResult> {
  const cfg = getPreset(spec.preset ?? "llama3-tiny");
  let i = 0;
  const batches = { next: () => window(tokens, spec.seq, i++) };
  return runSteps(dev, cfg, trainPolicy(spec.policy), batches, {
    steps: spec.steps,
    init: { seed: spec.seed ?? 1 },
    onStep,
    onWarning: () => {},
  });
}
