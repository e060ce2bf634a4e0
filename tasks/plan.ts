/**
 * `deno task plan <preset> --seq S [--policy NAME] [--mst [M|auto]] [--mst-mlp M] [--mst-head M] [--checkpoint]
 *   [--optimizer-in-backward] [--framework ours|hf] [--offload-checkpoints] [--keep-attention] [--dtype bf16|f16|f32]
 *   [--budget 80GiB] [--max-seq] [--json] [--gpus N] [--zero 0|1|2|3] [--sp K] [--offload-optimizer]
 *   [--offload-params] [--max-binding 4GiB] [--export deepspeed --out ds.json]
 *   [--gpu a100-80g|h100-80g|h200|…] [--overhead none|cuda|lavapipe]`
 *
 * `--gpu` targets a GPU profile (`lib/plan/gpus.ts`): the budget defaults to its memory and no
 * lavapipe overhead is added; a plan fits when its live bytes and what the device must hold (our
 * pool's reserve, or PyTorch's reserved segments under `--framework hf`, plus the overhead) stay
 * within the budget.
 *
 * With `--gpus` (and the other multi-GPU flags) it plans one rank's real share of the step
 * (ZeRO partitions, Ulysses SP's S/K tokens and all-to-all buffers); `--export deepspeed`
 * writes the planned setup as a DeepSpeed config and a launch note.
 *
 * Memory plan on the meta device: full training steps (forward, backward, AdamW) of the
 * real code without compute. Prints the per-tag breakdown at the peak, the phase of the peak,
 * each phase's peak, the largest tag, and whether fixed memory (weights + gradients + AdamW)
 * dominates; `--max-seq` searches the largest S that fits the budget. `--json` prints one JSON
 * object (`peakBytes`, `breakdown`, `peakPhase`, `phasePeaks`, `largestTag`, `fixedBytes`,
 * `fixedDominates`, `hostPeakBytes` — the offloaded checkpoints' host bytes, outside the
 * device peak and the budget —, `framework`, and under `--framework hf` an `hf` object with
 * PyTorch's allocated / reserved peaks and the extra buffers, …).
 */

import {
  budgetNote,
  COMMON_OPTIONS,
  parseBudget,
  parseDtype,
  parsePositiveInt,
  parseTaskArgs,
} from "../lib/cli/args.ts";
import { modelSetup, POLICY_HELP } from "../lib/cli/model_options.ts";
import { PARALLEL_HELP, PARALLEL_OPTIONS, parseParallel } from "../lib/cli/parallel_options.ts";
import { formatBytes } from "../lib/device/dtype.ts";
import { TAGS } from "../lib/device/allocator.ts";
import { parameterCount } from "../lib/config/derived.ts";
import { maxSequence, type Plan, planStep } from "../lib/plan/planner.ts";
import { explainPlan, fixedDominates } from "../lib/plan/explain.ts";
import { describePolicy } from "../lib/techniques/policy.ts";
import { GPUS, OVERHEADS, resolveTarget } from "../lib/plan/gpus.ts";
import { runTask } from "../lib/cli/task_main.ts";

const USAGE =
  `usage: deno task plan <preset> --seq S [--policy NAME] [--mst [M|auto]] [--mst-mlp M] [--mst-head M]
  [--checkpoint] [--optimizer-in-backward] [--framework ours|hf] [--offload-checkpoints] [--keep-attention]
  [--lora r=32,alpha=16,targets=all] [--base-dtype nf4|f16|bf16|f32]
  [--dtype bf16|f16|f32] [--budget 80GiB] [--max-seq] [--json]
  [--gpus N] [--zero 0|1|2|3] [--sp K] [--offload-optimizer] [--offload-params] [--max-binding SIZE]
  [--export deepspeed --out ds.json] [--config f.yaml] [--set key=value]...
  [--gpu a100-80g|h100-80g|h200|…] [--overhead none|cuda|lavapipe]

  --gpu NAME  plan for this GPU (${Object.keys(GPUS).join(", ")}): --budget defaults to its
              memory and no driver overhead is counted unless --overhead says so; without
              --seq it plans the longest S (as --max-seq)
  --overhead none|cuda|lavapipe  what the device holds beyond the plan: nothing, a CUDA context
              (≈300 MiB, measured in pytorch/pytorch#107667) or lavapipe's driver (the default
              without --gpu for our runtime; --framework hf defaults to none)
  A plan fits when its live bytes and what the device must hold (our pool's reserve, or
  PyTorch's reserved segments under --framework hf, plus the overhead) stay within the budget.

  --framework hf  plan what Hugging Face transformers + PyTorch would hold (the paper's setup):
              our tensors plus their extra buffers, through PyTorch's caching allocator model;
              the step fits when its reserved segments stay within --budget (one GPU: not with
              --gpus/--zero/--sp)
  --dtype f16 the mixed-precision step of \`train --dtype f16\` (f16 storage; f32 master weights,
              AdamW moments, rstd, lse and losses); bf16 counts every float as 2 bytes; f16
              combines with --gpus/--sp and --zero 0 only (ZeRO plans run in bf16)
${POLICY_HELP}
${PARALLEL_HELP}
  --max-binding SIZE  largest tensor a kernel may take (e.g. 4GiB: 2^31 bf16 elements, the
                  int32 offsets of PyTorch/Triton kernels); a step above it does not fit
  --export deepspeed --out ds.json  write the planned setup as a DeepSpeed config (validated
                  against DeepSpeed's documented keys) and a launch note ds.launch.md beside it`;

function table(plan: Plan): string {
  const rows = TAGS.filter((t) => (plan.breakdown[t] ?? 0) > 0).map((t) => {
    const b = plan.breakdown[t];
    return `  ${t.padEnd(12)} ${formatBytes(b).padStart(12)}  ${
      (100 * b / plan.peakBytes).toFixed(1).padStart(5)
    }%`;
  });
  const total = `  ${"total".padEnd(12)} ${formatBytes(plan.peakBytes).padStart(12)}`;
  const host = hostLine(plan);
  return [...rows, total, ...(host ? [host] : [])].join("\n");
}

/**
 * The host's bytes, one figure with its parts: the peak of offloaded checkpoints (the
 * allocator's host tag) and the rank's offloaded optimizer state / parameter partitions.
 */
function hostParts(
  plan: Plan,
): { totalBytes: number; checkpointsBytes: number; partitionsBytes: number } {
  const partitionsBytes = plan.rank?.hostBytes ?? 0;
  return {
    totalBytes: plan.hostPeakBytes + partitionsBytes,
    checkpointsBytes: plan.hostPeakBytes,
    partitionsBytes,
  };
}

function hostLine(plan: Plan): string | null {
  const h = hostParts(plan);
  if (h.totalBytes === 0) return null;
  const parts = [
    ...(h.checkpointsBytes > 0
      ? [`offloaded checkpoints ${formatBytes(h.checkpointsBytes)} (peak)`]
      : []),
    ...(h.partitionsBytes > 0
      ? [`optimizer state / parameter partitions ${formatBytes(h.partitionsBytes)}`]
      : []),
  ];
  return `  ${"host".padEnd(12)} ${formatBytes(h.totalBytes).padStart(12)}  outside the device ` +
    `and the budget: ${parts.join(" + ")}`;
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
    ...(plan.rank ? { rank: plan.rank } : {}),
    ...(plan.hf ? { hf: plan.hf } : {}),
  };
}

/** One rank of a multi-GPU plan: what it runs and what it keeps on the host. */
function rankLine(plan: Plan): string[] {
  if (!plan.rank) return [];
  const r = plan.rank;
  return [
    `one rank of ${r.description}: ${r.tokensPerRank} tokens per rank` +
    (r.parallel.zero === 3
      ? `, ZeRO-3 gathers one layer at a time (prefetch depth ${r.prefetchLayers})`
      : ""),
  ];
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

/** What the device must hold beside the live peak: the reserve and the overhead, named. */
function reservedLine(plan: Plan, overheadSource: string): string {
  const reserve = plan.deviceBytes - plan.overheadBytes;
  const what = plan.deviceReserve === "pool"
    ? `reserved (our runtime's pool) ${formatBytes(reserve)}`
    : `reserved (PyTorch's caching allocator) ${formatBytes(reserve)}`;
  const over = plan.overheadDriver === OVERHEADS.none.driver
    ? `no driver or CUDA context overhead counted (--overhead cuda adds a cited one)`
    : `${plan.overheadDriver} overhead ${formatBytes(plan.overheadBytes)}` +
      (plan.overheadDriver === OVERHEADS.lavapipe.driver ? ` (${plan.pipelines} pipelines)` : "") +
      ` [${overheadSource}]`;
  return `device holds ${formatBytes(plan.deviceBytes)}: ${what} + ${over}`;
}

/** The task: parses `argv`, plans, prints (the web page runs it too, capturing the output). */
export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseTaskArgs(argv, {
    ...COMMON_OPTIONS,
    dtype: { type: "string" },
    budget: { type: "string" },
    "max-seq": { type: "boolean" },
    "max-binding": { type: "string" },
    gpu: { type: "string" },
    overhead: { type: "string" },
    export: { type: "string" },
    out: { type: "string" },
    ...PARALLEL_OPTIONS,
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
  const framework = setup.policy.framework ?? "ours";
  const target = resolveTarget({
    gpu: values.gpu,
    budget: values.budget === undefined ? undefined : parseBudget(values.budget),
    overhead: values.overhead ??
      (values.gpu === undefined && framework === "hf" ? "none" : undefined),
  });
  const budget = target.budget;
  const understood = budgetNote(values.budget);
  if (understood && !values.json) console.log(understood);
  if (values.export !== undefined && values.export !== "deepspeed") {
    throw new Error(`--export: the only target is "deepspeed", got "${values.export}"`);
  }
  if ((values.export === undefined) !== (values.out === undefined)) {
    throw new Error("--export deepspeed and --out FILE.json go together");
  }
  const parallel = parseParallel(values, setup.cfg);
  const policy = parallel ? { ...setup.policy, parallel } : setup.policy;
  const limits = values["max-binding"]
    ? { maxStorageBufferBindingSize: parseBudget(values["max-binding"], "--max-binding") }
    : undefined;
  const base = {
    cfg: setup.cfg,
    policy,
    dtype,
    budget,
    overhead: target.overhead,
    ...(limits ? { limits } : {}),
  };
  const exportTo = async (seq: number, plan: Plan | null) => {
    if (!values.out) return;
    if (!plan?.fits) {
      throw new Error(
        `not exported: the plan at S=${seq} does not fit; lower --seq or use --max-seq`,
      );
    }
    // loaded here: the web page runs this task without a file system (and without --out)
    const { writeDeepSpeedExport } = await import("../lib/plan/deepspeed_write.ts");
    const w = await writeDeepSpeedExport(values.out, {
      cfg: setup.cfg,
      policy,
      dtype,
      seq,
      chunks: plan.chunks,
    });
    if (!values.json) console.log(`DeepSpeed config written to ${w.config}, launch note ${w.note}`);
  };
  const head = {
    preset: setup.cfg.name,
    dtype,
    policy: describePolicy(policy),
    framework: policy.framework ?? "ours",
    parameters: parameterCount(setup.cfg),
    budgetBytes: Number.isFinite(budget) ? budget : null,
    gpu: target.gpu?.id ?? null,
    overhead: { name: target.overhead.name, source: target.overhead.source },
  };
  const gpuLine = target.gpu
    ? `target ${target.gpu.name} (${formatBytes(target.gpu.memoryBytes)}, ${target.gpu.source})` +
      (values.budget === undefined ? "; budget = its memory" : `; budget ${formatBytes(budget)}`)
    : null;
  const t0 = performance.now();
  // `--gpu` without `--seq`: the longest S on that GPU
  if (values["max-seq"] || (target.gpu && !values.seq)) {
    const r = await maxSequence(base, {
      start: values.seq ? parsePositiveInt("--seq", values.seq, 1024) : undefined,
    });
    const ms = performance.now() - t0;
    await exportTo(r.maxSeq, r.plan);
    if (values.json) {
      console.log(JSON.stringify({
        ...head,
        maxSeq: r.maxSeq,
        seq: r.maxSeq,
        peakBytes: r.plan?.peakBytes ?? 0,
        reservedBytes: r.plan?.reservedBytes ?? 0,
        hostPeakBytes: r.plan?.hostPeakBytes ?? 0,
        overheadBytes: r.plan?.overheadBytes ?? 0,
        deviceBytes: r.plan?.deviceBytes ?? 0,
        limitedBy: r.limitedBy,
        ...(r.plan ? { host: hostParts(r.plan) } : {}),
        breakdown: r.plan?.breakdown ?? {},
        ...(r.plan ? peakFields(r.plan) : {}),
        weightsBytes: r.plan?.weightsBytes ?? 0,
        probes: r.probes,
        ms,
      }));
      return;
    }
    if (gpuLine) console.log(gpuLine);
    console.log(
      `${head.preset} (${dtype}, ${head.policy}): longest sequence within ${
        formatBytes(budget)
      } (live bytes and what the device holds): S = ${r.maxSeq}; stopped by ${r.limitedBy}`,
    );
    console.log(
      `(${r.probes.length} full training steps probed on the meta device in ${
        (ms / 1000).toFixed(1)
      } s)`,
    );
    if (r.maxSeq === 0) {
      console.log(
        `nothing fits: even S = ${r.stoppedAt?.seq ?? 1} needs more than ${formatBytes(budget)}` +
          (r.stoppedAt?.error ? ` (${r.stoppedAt.error})` : "") +
          // a budget below 1 GiB is more likely a unit slip than a real device
          (budget < 2 ** 30 ? ` (is --budget in the unit you meant? e.g. --budget 80GiB)` : ""),
      );
    }
    if (r.plan) {
      console.log(`peak at S=${r.maxSeq}:\n${table(r.plan)}`);
      for (const line of [...rankLine(r.plan), ...explainPlan(r.plan)]) console.log(line);
      for (const line of hfLines(r.plan)) console.log(line);
      console.log(reservedLine(r.plan, target.overhead.source));
    }
    return;
  }
  if (!values.seq) throw new Error(`--seq is required (or use --max-seq)\n${USAGE}`);
  const seq = parsePositiveInt("--seq", values.seq, 0);
  const plan = await planStep({ ...base, seq });
  const ms = performance.now() - t0;
  await exportTo(seq, plan);
  if (values.json) {
    console.log(
      JSON.stringify({
        ...head,
        seq,
        fits: plan.fits,
        peakBytes: plan.peakBytes,
        reservedBytes: plan.reservedBytes,
        hostPeakBytes: plan.hostPeakBytes,
        overheadBytes: plan.overheadBytes,
        overheadDriver: plan.overheadDriver,
        deviceBytes: plan.deviceBytes,
        host: hostParts(plan),
        ...(plan.failure ? { failure: plan.failure } : {}),
        pipelines: plan.pipelines,
        breakdown: plan.breakdown,
        ...peakFields(plan),
        weightsBytes: plan.weightsBytes,
        ms,
      }),
    );
    return;
  }
  if (gpuLine) console.log(gpuLine);
  console.log(
    `${head.preset} at S=${seq} (${dtype}, ${head.policy}): ${plan.fits ? "fits" : "does NOT fit"}${
      Number.isFinite(budget) ? ` in ${formatBytes(budget)}` : ""
    }`,
  );
  console.log(`peak ${formatBytes(plan.peakBytes)}:\n${table(plan)}`);
  for (const line of [...rankLine(plan), ...explainPlan(plan)]) console.log(line);
  for (const line of hfLines(plan)) console.log(line);
  console.log(reservedLine(plan, target.overhead.source));
  if (plan.error) console.log(plan.error);
}

if (import.meta.main) await runTask("plan", () => main(Deno.args));
