/**
 * `deno task exp llama3-long`: the MsT paper's headline on this machine.
 *
 * a. Planning at full scale (meta device, bf16, 80 GiB): the longest trainable sequence of
 *    Llama3-8B under standard training, recomputation, MsT + recomputation and MsT +
 *    recomputation + optimizer-in-backward, beside the paper's ≈5K / ≈15K / 60K; and the
 *    peak memory by tag at S=8192 for each policy.
 * b. Real training of llama3-tiny on the run's device at increasing S, standard vs
 *    MsT (auto) + recomputation: peak bytes and tokens/s vs S, and loss curves that must
 *    coincide (max |Δloss| recorded).
 * c. The memory timeline of one training step (MsT and standard), colored by phase.
 */

import { defineExperiment, type ExperimentContext } from "../lib/experiments/define.ts";
import { downsampleTimeline, stepTimeline } from "../lib/experiments/timeline.ts";
import { measureTraining, type TrainPolicy } from "../lib/experiments/train_run.ts";
import { TAGS } from "../lib/device/allocator.ts";
import { parseBytes } from "../lib/device/dtype.ts";
import { parseDtype } from "../lib/cli/args.ts";
import { getPreset } from "../lib/models/presets.ts";
import { parameterCount } from "../lib/models/derived.ts";
import { maxSequence, planStep } from "../lib/plan/planner.ts";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

const defaults = {
  /** Full-scale model planned on the meta device. */
  planPreset: "llama3-8b",
  planDtype: "bf16",
  budget: "80GiB",
  /** S of the per-tag breakdown. */
  breakdownSeq: 8192,
  /** Model trained for real. */
  preset: "llama3-tiny",
  seqs: [256, 512, 1024, 2048, 4096, 8192],
  /** Steps per (S, policy); the first is warm-up for tokens/s. */
  steps: 3,
  /** Batch source: brown (the Brown corpus) or repeat (one random sequence). */
  data: "brown",
  lossSeq: 512,
  lossSteps: 12,
  lr: 3e-3,
  seed: 1,
  timelineSeq: 1024,
  maxTimelinePoints: 3000,
};

type Config = typeof defaults;

/** A planning policy and the paper's figure for it (Llama3-8B, 1× A100 80 GB). */
interface PlanPolicy {
  /** Key in summary.json. */
  id: string;
  label: string;
  policy: TrainPolicy;
  /**
   * Unchunked LM head: this workbench's (`standard`) or transformers' memory behaviour with
   * fp32 upcast copies of the logits (`hf`, `lib/nn/hf_head_loss.ts`), the paper's baseline.
   */
  head: "standard" | "hf";
  paper: number | null;
  paperLabel: string;
}

const MST: TrainPolicy["mst"] = { mlp: "auto", head: "auto" };

/** The six planning policies: the paper's two baselines, ours, and MsT. */
const PLAN_POLICIES: PlanPolicy[] = [
  {
    id: "standardHf",
    label: "standard (HF head)",
    policy: { mst: {}, checkpoint: false },
    head: "hf",
    paper: 5000,
    paperLabel: "≈5K",
  },
  {
    id: "checkpointHf",
    label: "recomputation (HF head)",
    policy: { mst: {}, checkpoint: true },
    head: "hf",
    paper: 15000,
    paperLabel: "≈15K",
  },
  {
    id: "standard",
    label: "standard",
    policy: { mst: {}, checkpoint: false },
    head: "standard",
    paper: null,
    paperLabel: "—",
  },
  {
    id: "checkpoint",
    label: "recomputation",
    policy: { mst: {}, checkpoint: true },
    head: "standard",
    paper: null,
    paperLabel: "—",
  },
  {
    id: "mst",
    label: "MsT + recomputation",
    policy: { mst: MST, checkpoint: true },
    head: "standard",
    paper: null,
    paperLabel: "—",
  },
  {
    id: "mstOptimizerInBackward",
    label: "MsT + recomputation + optimizer-in-backward",
    policy: { mst: MST, checkpoint: true, optimizerInBackward: true },
    head: "standard",
    paper: 60000,
    paperLabel: "60K",
  },
];

/** The two policies trained for real. */
const TRAIN_POLICIES: { id: string; key: string; policy: TrainPolicy }[] = [
  { id: "standard", key: "standard", policy: { mst: {}, checkpoint: false } },
  {
    id: "MsT + recomputation",
    key: "mst",
    policy: { mst: { mlp: "auto", head: "auto" }, checkpoint: true },
  },
];

/** The same colors for the two trained policies on every chart. */
const POLICY_COLOR = {
  field: "policy",
  type: "nominal",
  scale: { domain: TRAIN_POLICIES.map((p) => p.id), range: ["#e45756", "#4c78a8"] },
  legend: { orient: "top", title: null },
};

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const fmtTokens = (n: number) => n.toLocaleString("en-US");
const finiteOrNull = (x: number) => Number.isFinite(x) ? x : null;

/** Part a: the longest sequence and the breakdown at one S, on the meta device. */
async function planning(ctx: ExperimentContext<Config>) {
  const c = ctx.config;
  const cfg = getPreset(c.planPreset);
  const dtype = parseDtype(c.planDtype);
  const budget = parseBytes(c.budget);
  ctx.log(
    `a. planning ${cfg.name} (${(parameterCount(cfg) / 1e9).toFixed(2)} B parameters, ${dtype}) ` +
      `in ${c.budget} on the meta device`,
  );
  const maxSeq: Record<string, number> = {};
  await ctx.sweep("max S", PLAN_POLICIES, async (p) => {
    const t0 = performance.now();
    const r = await maxSequence({
      cfg,
      dtype,
      budget,
      ...p.policy,
      optimizerInBackward: !!p.policy.optimizerInBackward,
      head: p.head,
    });
    maxSeq[p.id] = r.maxSeq;
    ctx.record({
      kind: "max-seq",
      policy: p.label,
      maxSeq: r.maxSeq,
      paper: p.paper,
      peakGiB: r.plan ? round(r.plan.peakBytes / GiB, 3) : null,
      reservedGiB: r.plan ? round(r.plan.reservedBytes / GiB, 3) : null,
      probes: r.probes.length,
      ms: Math.round(performance.now() - t0),
    });
    ctx.log(`   ${p.label.padEnd(44)} max S = ${fmtTokens(r.maxSeq)} (paper ${p.paperLabel})`);
  });
  const breakdowns: Record<string, { peak: number; breakdown: Record<string, number> }> = {};
  await ctx.sweep(`S=${c.breakdownSeq}`, PLAN_POLICIES, async (p) => {
    const plan = await planStep({
      cfg,
      dtype,
      budget: Infinity,
      seq: c.breakdownSeq,
      ...p.policy,
      optimizerInBackward: !!p.policy.optimizerInBackward,
      head: p.head,
    });
    breakdowns[p.id] = { peak: plan.peakBytes, breakdown: plan.breakdown };
    for (const tag of TAGS) {
      const b = plan.breakdown[tag] ?? 0;
      if (b > 0) {
        ctx.record({
          kind: "breakdown",
          policy: p.label,
          seq: c.breakdownSeq,
          tag,
          GiB: round(b / GiB, 3),
        });
      }
    }
    ctx.log(
      `   S=${c.breakdownSeq} ${p.label.padEnd(44)} peak ${(plan.peakBytes / GiB).toFixed(2)} GiB`,
    );
  });

  const sourceOurs = "this workbench (meta device)";
  const sourcePaper = "paper (1× A100 80 GB)";
  // axis labels broken into lines at " (" and " + " (vega-lite splits them on "|")
  const axisLabel = (l: string) => l.replaceAll(" (", "|(").replaceAll(" + ", " +|");
  const bars = PLAN_POLICIES.flatMap((p) => [
    {
      policy: axisLabel(p.label),
      source: sourceOurs,
      tokens: maxSeq[p.id],
      label: fmtTokens(maxSeq[p.id]),
    },
    ...(p.paper === null ? [] : [{
      policy: axisLabel(p.label),
      source: sourcePaper,
      tokens: p.paper,
      label: p.paperLabel,
    }]),
  ]);
  const order = PLAN_POLICIES.map((p) => p.label);
  ctx.chart("max-seq", {
    title: `${cfg.name}: longest trainable sequence in ${c.budget} (${dtype})`,
    data: { values: bars },
    width: 720,
    height: 300,
    encoding: {
      x: {
        field: "policy",
        type: "nominal",
        sort: order.map(axisLabel),
        axis: { labelAngle: 0, labelExpr: "split(datum.label, '|')" },
        title: null,
      },
      xOffset: { field: "source", type: "nominal" },
      y: { field: "tokens", type: "quantitative", title: "max sequence length (tokens)" },
      color: {
        field: "source",
        type: "nominal",
        title: null,
        legend: { orient: "top", labelLimit: 400 },
      },
    },
    layer: [
      { mark: "bar" },
      { mark: { type: "text", dy: -6, fontSize: 10 }, encoding: { text: { field: "label" } } },
    ],
  });
  const budgetGiB = budget / GiB;
  const stack = PLAN_POLICIES.flatMap((p) =>
    TAGS.filter((t) => (breakdowns[p.id].breakdown[t] ?? 0) > 0).map((t) => ({
      policy: p.label,
      tag: t,
      tagIndex: TAGS.indexOf(t),
      GiB: breakdowns[p.id].breakdown[t] / GiB,
    }))
  );
  ctx.chart("breakdown", {
    title: `${cfg.name} at S=${fmtTokens(c.breakdownSeq)}: peak memory by tag (${dtype})`,
    width: 560,
    height: 180,
    layer: [
      {
        data: { values: stack },
        mark: "bar",
        encoding: {
          y: {
            field: "policy",
            type: "nominal",
            sort: order,
            title: null,
            axis: { labelLimit: 400 },
          },
          x: { field: "GiB", type: "quantitative", title: "GiB at the peak", stack: "zero" },
          color: { field: "tag", type: "nominal", sort: [...TAGS] },
          order: { field: "tagIndex", type: "quantitative" },
        },
      },
      {
        data: { values: [{ budget: budgetGiB, label: `budget ${c.budget}` }] },
        mark: { type: "rule", color: "#c00", strokeDash: [4, 3] },
        encoding: { x: { field: "budget", type: "quantitative" } },
      },
    ],
  });
  return { cfg, dtype, budget, maxSeq, breakdowns };
}

/** Part b: real training at increasing S, and loss curves. */
async function training(ctx: ExperimentContext<Config>) {
  const c = ctx.config;
  const dev = await ctx.device();
  const cfg = getPreset(c.preset);
  ctx.log(
    `b. training ${cfg.name} on ${dev.kind}: S = ${c.seqs.join(", ")}, ${c.steps} steps each, ` +
      `data ${c.data}`,
  );
  const points: {
    seq: number;
    policy: string;
    peakBytes: number;
    tokensPerSec: number;
    losses: number[];
  }[] = [];
  const grid = c.seqs.flatMap((seq) => TRAIN_POLICIES.map((p) => ({ seq, ...p })));
  await ctx.sweep("train", grid, async ({ seq, id, policy }) => {
    const r = await measureTraining(dev, {
      cfg,
      policy,
      seq,
      steps: c.steps,
      data: c.data,
      seed: c.seed,
      lr: c.lr,
    });
    const losses = r.steps.map((s) => s.loss);
    points.push({ seq, policy: id, peakBytes: r.peakBytes, tokensPerSec: r.tokensPerSec, losses });
    ctx.record({
      kind: "train",
      seq,
      policy: id,
      peakMiB: round(r.peakBytes / MiB, 3),
      reservedMiB: round(r.reservedBytes / MiB, 3),
      tokensPerSec: round(r.tokensPerSec, 1),
      stepMs: r.steps.map((s) => Math.round(s.ms)),
      losses: losses.map((l) => finiteOrNull(round(l, 5))),
      leakedBytes: r.leakedBytes,
      ...Object.fromEntries(
        TAGS.filter((t) => (r.breakdown[t] ?? 0) > 0).map((
          t,
        ) => [`${t}MiB`, round(r.breakdown[t] / MiB, 3)]),
      ),
    });
    ctx.log(
      `   S=${String(seq).padStart(5)} ${id.padEnd(20)} peak ${
        (r.peakBytes / MiB).toFixed(2)
      } MiB, ` +
        `${r.tokensPerSec.toFixed(0)} tok/s, losses ${losses.map((l) => l.toFixed(4)).join(" ")}`,
    );
  });

  ctx.log(`   loss curves at S=${c.lossSeq}, ${c.lossSteps} steps`);
  const curves: Record<string, number[]> = {};
  await ctx.sweep("loss curve", TRAIN_POLICIES, async ({ id, policy }) => {
    const r = await measureTraining(dev, {
      cfg,
      policy,
      seq: c.lossSeq,
      steps: c.lossSteps,
      data: c.data,
      seed: c.seed,
      lr: c.lr,
      onStep: (s) =>
        ctx.record({
          kind: "loss",
          policy: id,
          seq: c.lossSeq,
          step: s.step,
          loss: finiteOrNull(s.loss),
        }),
    });
    curves[id] = r.steps.map((s) => s.loss);
  });

  // max |Δloss| between the policies, over the sweep and the curves
  const [a, b] = TRAIN_POLICIES.map((p) => p.id);
  let maxDelta = 0;
  const compare = (x: number[], y: number[]) => {
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      maxDelta = Math.max(maxDelta, Math.abs(x[i] - y[i]));
    }
  };
  for (const seq of c.seqs) {
    const pa = points.find((p) => p.seq === seq && p.policy === a)!;
    const pb = points.find((p) => p.seq === seq && p.policy === b)!;
    compare(pa.losses, pb.losses);
  }
  compare(curves[a], curves[b]);

  /** A line chart of one per-(S, policy) figure against S (log₂ axis). */
  const vsSeq = (
    name: string,
    what: string,
    value: (p: (typeof points)[number]) => number,
    y: Record<string, unknown>,
  ) =>
    ctx.chart(name, {
      title: `${cfg.name} on ${dev.kind}: ${what} vs sequence length`,
      data: { values: points.map((p) => ({ S: p.seq, policy: p.policy, value: value(p) })) },
      width: 480,
      height: 280,
      mark: { type: "line", point: true },
      encoding: {
        x: {
          field: "S",
          type: "quantitative",
          scale: { type: "log", base: 2 },
          axis: { values: c.seqs },
        },
        y: { field: "value", type: "quantitative", ...y },
        color: POLICY_COLOR,
      },
    });
  vsSeq("peak-vs-seq", "peak memory", (p) => p.peakBytes / MiB, {
    scale: { type: "log" },
    title: "peak allocated (MiB)",
  });
  vsSeq("throughput", "training throughput", (p) => p.tokensPerSec, { title: "tokens / s" });
  ctx.chart("loss-curves", {
    title: `${cfg.name}, S=${c.lossSeq}, ${c.data} data: loss per step (${
      !Number.isFinite(maxDelta)
        ? "no losses on meta"
        : `max |Δ| ${maxDelta === 0 ? "0" : maxDelta.toExponential(2)}`
    })`,
    data: {
      values: Object.entries(curves).flatMap(([policy, ls]) =>
        ls.map((loss, i) => ({ step: i + 1, policy, loss: finiteOrNull(loss) }))
      ),
    },
    width: 480,
    height: 260,
    encoding: {
      x: { field: "step", type: "quantitative", axis: { tickMinStep: 1 } },
      y: { field: "loss", type: "quantitative", scale: { zero: false } },
      color: POLICY_COLOR,
    },
    // the standard curve wide underneath, the MsT curve thin and dashed on top: where they
    // coincide both stay visible
    layer: [
      {
        transform: [{ filter: { field: "policy", equal: TRAIN_POLICIES[0].id } }],
        mark: { type: "line", strokeWidth: 6, opacity: 0.45 },
      },
      {
        transform: [{ filter: { field: "policy", equal: TRAIN_POLICIES[1].id } }],
        mark: { type: "line", strokeWidth: 1.5, strokeDash: [5, 3], point: true },
      },
    ],
  });
  return { cfg, device: dev.kind, points, curves, maxDelta };
}

/** Part c: the memory timeline of one step, MsT and standard. */
async function timeline(ctx: ExperimentContext<Config>) {
  const c = ctx.config;
  const dev = await ctx.device();
  const cfg = getPreset(c.preset);
  ctx.log(`c. memory timeline of one step of ${cfg.name} at S=${c.timelineSeq} on ${dev.kind}`);
  const rows: { policy: string; index: number; MiB: number; phase: string }[] = [];
  const out: Record<
    string,
    { events: number; peakMiB: number; peakPhase: string; startMiB: number }
  > = {};
  await ctx.sweep("timeline", [...TRAIN_POLICIES].reverse(), async ({ id, key, policy }) => {
    const t = await stepTimeline(dev, {
      cfg,
      policy,
      seq: c.timelineSeq,
      data: c.data,
      seed: c.seed,
    });
    out[key] = {
      events: t.events.length,
      peakMiB: round(t.peakBytes / MiB, 3),
      peakPhase: t.peakPhase,
      startMiB: round(t.startBytes / MiB, 3),
    };
    for (const p of downsampleTimeline(t.events, c.maxTimelinePoints)) {
      rows.push({ policy: id, index: p.index, MiB: p.liveBytes / MiB, phase: p.phase });
    }
    t.events.forEach((e, i) =>
      ctx.record({
        kind: "timeline",
        policy: id,
        index: i,
        event: e.kind,
        tag: e.tag,
        name: e.name,
        bytes: e.bytes,
        phase: e.phase,
        liveBytes: e.liveBytes,
      })
    );
    ctx.log(
      `   ${id.padEnd(20)} ${t.events.length} events, peak ${
        (t.peakBytes / MiB).toFixed(2)
      } MiB in ${t.peakPhase}`,
    );
  });
  ctx.chart("memory-timeline", {
    title: `${cfg.name} at S=${c.timelineSeq}: live memory through one training step`,
    data: { values: rows },
    facet: {
      row: {
        field: "policy",
        type: "nominal",
        title: null,
        sort: TRAIN_POLICIES.map((p) => p.id).reverse(),
      },
    },
    resolve: { scale: { x: "independent" } },
    spec: {
      width: 640,
      height: 160,
      mark: { type: "line", interpolate: "step-after", strokeWidth: 1.2 },
      encoding: {
        x: { field: "index", type: "quantitative", title: "allocator event (alloc/free) index" },
        y: { field: "MiB", type: "quantitative", title: "live MiB" },
        color: {
          field: "phase",
          type: "nominal",
          sort: ["forward", "backward", "optimizer", "other"],
          legend: { orient: "top" },
        },
      },
    },
  });
  return out;
}

export default defineExperiment({
  name: "llama3-long",
  description:
    "MsT's headline on this machine: Llama3-8B's longest trainable sequence in 80 GiB (meta device), " +
    "llama3-tiny peak memory / throughput / loss vs S with and without MsT, and a step's memory timeline",
  defaults,
  quick: {
    seqs: [128, 256, 512],
    steps: 2,
    lossSeq: 128,
    lossSteps: 6,
    timelineSeq: 256,
  },
  async run(ctx) {
    const c = ctx.config;
    const plan = await planning(ctx);
    const train = await training(ctx);
    const tl = await timeline(ctx);

    const ids = PLAN_POLICIES.map((p) => p.id);
    const m = plan.maxSeq;
    const [stdHf, ckptHf, std, oib] = [
      m.standardHf,
      m.checkpointHf,
      m.standard,
      m.mstOptimizerInBackward,
    ];
    const at = (policy: string, seq: number) =>
      train.points.find((p) => p.policy === policy && p.seq === seq)!;
    const largest = Math.max(...c.seqs);
    const [tStd, tMst] = TRAIN_POLICIES.map((p) => at(p.id, largest));
    const meta = train.device === "meta";
    const b8k = (id: string) => round(plan.breakdowns[id].peak / GiB);

    ctx.summary({
      plan: {
        preset: plan.cfg.name,
        dtype: plan.dtype,
        budgetGiB: round(plan.budget / GiB),
        maxSeq: { ...m },
        paperMaxSeq: Object.fromEntries(
          PLAN_POLICIES.filter((p) => p.paper !== null).map((p) => [p.id, p.paper]),
        ),
        // the paper's ratios: MsT (its 60K) over its transformers baselines
        ratioMstOverStandardHf: round(oib / stdHf),
        ratioMstOverCheckpointHf: round(oib / ckptHf),
        ratioMstOverStandard: round(oib / std),
        breakdownSeq: c.breakdownSeq,
        peakGiBAtBreakdownSeq: Object.fromEntries(ids.map((id) => [id, b8k(id)])),
      },
      train: {
        preset: train.cfg.name,
        device: train.device,
        data: c.data,
        seqs: c.seqs,
        largestSeq: largest,
        peakMiBStandard: round(tStd.peakBytes / MiB, 3),
        peakMiBMst: round(tMst.peakBytes / MiB, 3),
        peakReduction: round(tStd.peakBytes / tMst.peakBytes),
        tokensPerSecStandard: meta ? null : round(tStd.tokensPerSec, 1),
        tokensPerSecMst: meta ? null : round(tMst.tokensPerSec, 1),
        throughputRatioMstOverStandard: meta
          ? null
          : round(tMst.tokensPerSec / tStd.tokensPerSec, 3),
        maxAbsDeltaLoss: finiteOrNull(train.maxDelta),
      },
      timeline: { seq: c.timelineSeq, ...tl },
    });

    ctx.table({
      title: "The paper's numbers beside ours",
      columns: [
        "claim",
        "paper (Llama3-8B, 1× A100 80 GB)",
        "this workbench",
        "how ours was measured",
      ],
      rows: [
        ...PLAN_POLICIES.map((p) => [
          `max S, ${p.label}`,
          p.paperLabel,
          fmtTokens(m[p.id]),
          `meta device, ${plan.dtype}, ${c.budget}`,
        ]),
        [
          "MsT vs standard",
          "≈12×",
          `${round(oib / stdHf, 1)}× (${round(oib / std, 1)}× our standard)`,
          "max S with optimizer-in-backward / standard (HF head)",
        ],
        [
          "MsT vs recomputation",
          "≈4×",
          `${round(oib / ckptHf, 1)}× (${round(oib / m.checkpoint, 1)}× our recomputation)`,
          "max S with optimizer-in-backward / recomputation (HF head)",
        ],
        [
          `peak at S=8192, MsT + recomputation`,
          "74.81 GB (reference notebook)",
          c.breakdownSeq === 8192 ? `${b8k("mst")} GiB` : "—",
          "meta device, allocated bytes",
        ],
        [
          `peak at the largest S (${largest}), standard → MsT`,
          "67 → 48 GB (−30%, appendix, S not stated)",
          `${round(tStd.peakBytes / MiB)} → ${round(tMst.peakBytes / MiB)} MiB (÷${
            round(tStd.peakBytes / tMst.peakBytes)
          })`,
          `${train.cfg.name} on ${train.device}`,
        ],
        [
          "throughput MsT / standard",
          "no degradation",
          meta
            ? "— (meta device: no compute)"
            : `${round(tMst.tokensPerSec / tStd.tokensPerSec, 3)} at S=${largest}`,
          `${train.cfg.name} on ${train.device}`,
        ],
        [
          "same loss with and without MsT",
          "identical convergence",
          meta
            ? "— (meta device: no losses)"
            : `max |Δloss| ${train.maxDelta === 0 ? "0" : train.maxDelta.toExponential(2)}`,
          `${c.data} data, every step of every run`,
        ],
      ],
    });
    ctx.table({
      title: `${plan.cfg.name}: longest trainable sequence in ${c.budget} (${plan.dtype})`,
      columns: [
        "policy",
        "paper",
        "ours (max S)",
        "× standard (HF head)",
        `peak at S=${c.breakdownSeq} (GiB)`,
      ],
      rows: PLAN_POLICIES.map((p) => [
        p.label,
        p.paperLabel,
        plan.maxSeq[p.id],
        round(plan.maxSeq[p.id] / stdHf, 1),
        b8k(p.id),
      ]),
    });
    const shownTags = TAGS.filter((t) =>
      ids.some((id) => (plan.breakdowns[id].breakdown[t] ?? 0) > 0)
    );
    ctx.table({
      title: `${plan.cfg.name} at S=${c.breakdownSeq}: peak by tag (GiB, ${plan.dtype})`,
      columns: ["policy", ...shownTags, "total", `fits ${c.budget}`],
      rows: PLAN_POLICIES.map((p) => {
        const b = plan.breakdowns[p.id];
        return [
          p.label,
          ...shownTags.map((t) => round((b.breakdown[t] ?? 0) / GiB)),
          round(b.peak / GiB),
          b.peak <= plan.budget ? "yes" : "no",
        ];
      }),
    });
    ctx.table({
      title: `${train.cfg.name} on ${train.device}: peak and throughput vs S`,
      columns: [
        "S",
        "peak standard (MiB)",
        "peak MsT (MiB)",
        "÷",
        "tok/s standard",
        "tok/s MsT",
        "max |Δloss|",
      ],
      rows: c.seqs.map((seq) => {
        const s = at(TRAIN_POLICIES[0].id, seq);
        const m = at(TRAIN_POLICIES[1].id, seq);
        const d = Math.max(...s.losses.map((l, i) => Math.abs(l - m.losses[i])));
        return [
          seq,
          round(s.peakBytes / MiB),
          round(m.peakBytes / MiB),
          round(s.peakBytes / m.peakBytes),
          meta ? null : round(s.tokensPerSec),
          meta ? null : round(m.tokensPerSec),
          !Number.isFinite(d) ? null : d === 0 ? "0" : d.toExponential(2),
        ];
      }),
    });
    ctx.note(
      `Planning runs two full training steps (forward, backward, AdamW) of the real code on the meta device, ` +
        `counting every float as ${plan.dtype} (weights, gradients and AdamW states alike) and the allocator's ` +
        `live bytes (PyTorch's "allocated"); the paper measured PyTorch on an A100, where the CUDA context, ` +
        `fragmentation and framework buffers also take memory, so limits found here are upper bounds. ` +
        `The paper's 60K uses optimizer-in-backward. Its baselines are Hugging Face transformers, ` +
        `whose LM head and loss keep fp32 upcast copies of the S×V logits: the "(HF head)" ` +
        `policies emulate exactly those buffers (lib/nn/hf_head_loss.ts); the plain standard and ` +
        `recomputation policies use this workbench's head (model-dtype logits and gradients).`,
    );
    ctx.note(
      `Training: ${train.cfg.name} (d=${train.cfg.hidden}, I=${train.cfg.intermediate}, V=${train.cfg.vocabSize}, ` +
        `L=${train.cfg.layers}) on the ${train.device} device, ${c.steps} steps per point, tokens/s from the median ` +
        `step after the first (warm-up). Both policies see the same batches from the same initialization. ` +
        `On a 2-core machine shared with other work, tokens/s vary by tens of percent between runs.` +
        (meta
          ? " On the meta device nothing is computed: losses are NaN and tokens/s are meaningless."
          : ""),
    );
  },
});
