/**
 * What the planner's Web Worker computes, callable from Deno too (the tests compare it with
 * the CLI): the plan task's own `main` run on an argv with its printed lines captured, the
 * DeepSpeed export of the same flags, and the memory timeline of one step.
 */

import { main as planMain } from "../../tasks/plan.ts";
import { COMMON_OPTIONS, parseDtype, parsePositiveInt, parseTaskArgs } from "../../lib/cli/args.ts";
import { modelSetup } from "../../lib/cli/model_options.ts";
import { PARALLEL_OPTIONS, parseParallel } from "../../lib/cli/parallel_options.ts";
import { deepspeedExportTexts } from "../../lib/plan/deepspeed_export.ts";
import type { ResolvedChunks } from "../../lib/models/model.ts";
import { MetaDevice } from "../../lib/device/meta.ts";
import { runSteps } from "../../lib/train/run_steps.ts";

let running: Promise<unknown> = Promise.resolve();

/**
 * Runs `deno task plan <argv>` in this process and returns what it printed (one string per
 * `console.log`). An error is thrown with the CLI's message (without its `plan: ` prefix).
 */
export function runPlanTask(argv: readonly string[]): Promise<string[]> {
  // one at a time: console.log is swapped for the duration of the run
  const job = running.then(async () => {
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.map(String).join(" "));
    try {
      await planMain([...argv]);
    } finally {
      console.log = log;
    }
    return lines;
  });
  running = job.catch(() => {});
  return job;
}

/** The JSON object of `deno task plan <argv> --json`, and the exact line it printed. */
export async function planJson(
  argv: readonly string[],
): Promise<{ line: string; plan: Record<string, unknown> }> {
  const lines = await runPlanTask([...argv, "--json"]);
  const line = lines[lines.length - 1];
  return { line, plan: JSON.parse(line) };
}

const OPTIONS = {
  ...COMMON_OPTIONS,
  dtype: { type: "string" },
  budget: { type: "string" },
  "max-seq": { type: "boolean" },
  "max-binding": { type: "string" },
  export: { type: "string" },
  out: { type: "string" },
  ...PARALLEL_OPTIONS,
} as const;

/**
 * `plan <argv> --export deepspeed --out ds.json` without the files: the config (validated as
 * the CLI validates it) and the launch note, for a plan that fits at `seq` with `chunks`.
 */
export async function deepspeedExport(
  argv: readonly string[],
  seq: number,
  chunks: ResolvedChunks | undefined,
): Promise<{ config: string; note: string }> {
  const { values, positionals } = parseTaskArgs(argv, OPTIONS, "");
  const setup = await modelSetup(positionals[0], values);
  const dtype = parseDtype(values.dtype);
  const parallel = parseParallel(values, setup.cfg);
  const policy = parallel ? { ...setup.policy, parallel } : setup.policy;
  return deepspeedExportTexts({ cfg: setup.cfg, policy, dtype, seq, chunks }, "ds.json");
}

/** One point of a memory timeline. */
export interface TimelinePoint {
  index: number;
  liveBytes: number;
  phase: string;
  policy: string;
}

/**
 * Live bytes after each allocator event of one training step on the meta device (the second
 * step, with AdamW's state live), single device: the flags' model, policy (without the
 * parallel plan) and dtype at `--seq`.
 */
export async function stepTimeline(
  argv: readonly string[],
  label: string,
): Promise<TimelinePoint[]> {
  const { values, positionals } = parseTaskArgs(argv, OPTIONS, "");
  const setup = await modelSetup(positionals[0], values);
  const dtype = parseDtype(values.dtype);
  const seq = parsePositiveInt("--seq", values.seq, 1024);
  const dev = new MetaDevice({ floats: dtype });
  const ids = new Int32Array(seq);
  let second = false;
  await runSteps(dev, setup.cfg, setup.policy, { ids, targets: ids }, {
    steps: 2,
    onWarning: () => {},
    onStep: () => {
      if (!second) {
        second = true;
        dev.allocator.startTimeline();
      }
    },
  });
  return dev.allocator.stopTimeline().map((e, index) => ({
    index,
    liveBytes: e.liveBytes,
    phase: e.phase || "other",
    policy: label,
  }));
}
