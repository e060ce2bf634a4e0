/**
 * `deno task plan <preset> --seq S [--policy NAME] [--mst [M|auto]] [--mst-mlp M] [--mst-head M] [--checkpoint]
 *   [--optimizer-in-backward] [--framework ours|hf] [--dtype bf16|f16|f32] [--budget 80GiB] [--max-seq] [--json]`
 *
 * Memory plan on the meta device: full training steps (forward, backward, AdamW) of the
 * real code without compute. Prints the per-tag breakdown at the peak, the phase of the peak,
 * each phase's peak, the largest tag, and whether fixed memory (weights + gradients + AdamW)
 * dominates; `--max-seq` searches the largest S that fits the budget. `--json` prints one JSON
 * object (`peakBytes`, `breakdown`, `peakPhase`, `phasePeaks`, `largestTag`, `fixedBytes`,
 * `fixedDominates`, `framework`, and under `--framework hf` an `hf` object with PyTorch's
 * allocated / reserved peaks and the extra buffers, …).
 */

import {
  COMMON_OPTIONS,
  parseBudget,
  parseDtype,
  parsePositiveInt,
  parseTaskArgs,
} from "../lib/cli/args.ts";
import { modelSetup, POLICY_HELP } from "../lib/cli/model_options.ts";
import { formatBytes } from "../lib/device/dtype.ts";
import { TAGS } from "../lib/device/allocator.ts";
import { parameterCount } from "../lib/models/derived.ts";
import { maxSequence, type Plan, planStep } from "../lib/plan/planner.ts";
import { explainPlan, fixedDominates } from "../lib/plan/explain.ts";
import { describePolicy } from "../lib/models/policy.ts";

const USAGE =
  `usage: deno task plan <preset> --seq S [--policy NAME] [--mst [M|auto]] [--mst-mlp M] [--mst-head M]
  [--checkpoint] [--optimizer-in-backward] [--framework ours|hf] [--dtype bf16|f16|f32] [--budget 80GiB]
  [--max-seq] [--json] [--config f.yaml] [--set key=value]...

  --framework hf  plan what Hugging Face transformers + PyTorch would hold (the paper's setup):
              our tensors plus their extra buffers, through PyTorch's caching allocator model;
              the step fits when its reserved segments stay within --budget
  --dtype f16 the mixed-precision step of \`train --dtype f16\` (f16 storage; f32 master weights,
              AdamW moments, rstd, lse and losses); bf16 counts every float as 2 bytes
${POLICY_HELP}`;

function table(plan: Plan): string {
  const rows = TAGS.filter((t) => (plan.breakdown[t] ?? 0) > 0).map((t) => {
    const b = plan.breakdown[t];
    return `  ${t.padEnd(12)} ${formatBytes(b).padStart(12)}  ${
      (100 * b / plan.peakBytes).toFixed(1).padStart(5)
    }%`;
  });
  return [...rows, `  ${"total".padEnd(12)} ${formatBytes(plan.peakBytes).padStart(12)}`].join(
    "\n",
  );
}

/** The JSON fields explaining the peak. */
function peakFields(plan: Plan) {
  return {
    peakPhase: plan.peakPhase,
    phasePeaks: plan.phasePeaks,
    largestTag: plan.largestTag,
    fixedBytes: plan.fixedBytes,
    fixedDominates: fixedDominates(plan),
    ...(plan.chunks ? { chunks: plan.chunks } : {}),
    warnings: plan.warnings,
    ...(plan.hf ? { hf: plan.hf } : {}),
  };
}

/** Under `--framework hf`: PyTorch's allocator figures and the largest extra buffers. */
function hfLines(plan: Plan): string[] {
  if (!plan.hf) return [];
  const h = plan.hf;
  const extras = h.extras.filter((e) => e.maxBytes > 0).map((e) =>
    `  ${e.kind.padEnd(20)} ${formatBytes(e.atPeakBytes).padStart(12)} at the peak, max ${
      formatBytes(e.maxBytes)
    }`
  );
  return [
    `PyTorch caching allocator: max_memory_allocated ${
      formatBytes(h.allocatedPeakBytes)
    }, max_memory_reserved ${formatBytes(h.reservedPeakBytes)} (${h.segments} segments, ` +
    `${formatBytes(h.fragmentationBytes)} more than allocated)`,
    `extra buffers of transformers + PyTorch (docs/architecture.md names their sources):`,
    ...extras,
  ];
}

/** The pool and the driver beside the live peak: what the device really holds. */
function reservedLine(plan: Plan): string {
  return `reserved (pool) ${formatBytes(plan.reservedBytes)} + ${plan.overheadDriver} driver ` +
    `overhead ${formatBytes(plan.overheadBytes)} (${plan.pipelines} pipelines) = ` +
    `${formatBytes(plan.reservedBytes + plan.overheadBytes)} on the device`;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseTaskArgs(argv, {
    ...COMMON_OPTIONS,
    dtype: { type: "string" },
    budget: { type: "string" },
    "max-seq": { type: "boolean" },
  }, USAGE);
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.device && values.device !== "meta") {
    throw new Error(`plan runs on the meta device only (got --device ${values.device})`);
  }
  const setup = await modelSetup(positionals[0], values);
  const dtype = parseDtype(values.dtype);
  const budget = parseBudget(values.budget);
  const base = { cfg: setup.cfg, policy: setup.policy, dtype, budget };
  const head = {
    preset: setup.cfg.name,
    dtype,
    policy: describePolicy(setup.policy),
    framework: setup.policy.framework ?? "ours",
    parameters: parameterCount(setup.cfg),
    budgetBytes: Number.isFinite(budget) ? budget : null,
  };
  const t0 = performance.now();
  if (values["max-seq"]) {
    const r = await maxSequence(base, {
      start: values.seq ? parsePositiveInt("--seq", values.seq, 1024) : 1024,
    });
    const ms = performance.now() - t0;
    if (values.json) {
      console.log(JSON.stringify({
        ...head,
        maxSeq: r.maxSeq,
        seq: r.maxSeq,
        peakBytes: r.plan?.peakBytes ?? 0,
        reservedBytes: r.plan?.reservedBytes ?? 0,
        overheadBytes: r.plan?.overheadBytes ?? 0,
        breakdown: r.plan?.breakdown ?? {},
        ...(r.plan ? peakFields(r.plan) : {}),
        weightsBytes: r.plan?.weightsBytes ?? 0,
        probes: r.probes,
        ms,
      }));
      return;
    }
    console.log(
      `${head.preset} (${dtype}, ${head.policy}): longest sequence within ${
        formatBytes(budget)
      }: S = ${r.maxSeq}`,
    );
    console.log(
      `(${r.probes.length} full training steps probed on the meta device in ${
        (ms / 1000).toFixed(1)
      } s)`,
    );
    if (r.plan) {
      console.log(`peak at S=${r.maxSeq}:\n${table(r.plan)}`);
      for (const line of explainPlan(r.plan)) console.log(line);
      for (const line of hfLines(r.plan)) console.log(line);
      console.log(reservedLine(r.plan));
    }
    return;
  }
  if (!values.seq) throw new Error(`--seq is required (or use --max-seq)\n${USAGE}`);
  const seq = parsePositiveInt("--seq", values.seq, 0);
  const plan = await planStep({ ...base, seq });
  const ms = performance.now() - t0;
  if (values.json) {
    console.log(
      JSON.stringify({
        ...head,
        seq,
        fits: plan.fits,
        peakBytes: plan.peakBytes,
        reservedBytes: plan.reservedBytes,
        overheadBytes: plan.overheadBytes,
        overheadDriver: plan.overheadDriver,
        pipelines: plan.pipelines,
        breakdown: plan.breakdown,
        ...peakFields(plan),
        weightsBytes: plan.weightsBytes,
        ms,
      }),
    );
    return;
  }
  console.log(
    `${head.preset} at S=${seq} (${dtype}, ${head.policy}): ${plan.fits ? "fits" : "does NOT fit"}${
      Number.isFinite(budget) ? ` in ${formatBytes(budget)}` : ""
    }`,
  );
  console.log(`peak ${formatBytes(plan.peakBytes)}:\n${table(plan)}`);
  for (const line of explainPlan(plan)) console.log(line);
  for (const line of hfLines(plan)) console.log(line);
  console.log(reservedLine(plan));
  if (plan.error) console.log(plan.error);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`plan: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
