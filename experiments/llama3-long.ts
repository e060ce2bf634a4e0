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

import {
  barsWithReference,
  bytes,
  type ConfigOf,
  defineExperiment,
  describePolicy,
  dtype,
  type ExperimentContext,
  getPreset,
  int,
  ints,
  lossCurves,
  makeBatches,
  maxSequence,
  type MemoryPolicy,
  memoryTimeline,
  metricVsSeq,
  num,
  oneOf,
  parameterCount,
  parseBytes,
  parseDtype,
  planStep,
  POLICIES,
  preset,
  runSteps,
  stackedPeak,
  stepTimeline,
  TAGS,
  timelineRows,
} from "../mod.ts";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

const defaults = {
  planPreset: preset("llama3-8b", { doc: "full-scale model planned on the meta device (part a)" }),
  planDtype: dtype("bf16", { doc: "how the planner counts floats" }),
  budget: bytes("80GiB", { doc: "device memory of the planned GPU" }),
  breakdownSeq: int(8192, { min: 2, doc: "S of the per-tag peak breakdown" }),
  preset: preset("llama3-tiny", { doc: "model trained for real (parts b and c)" }),
  seqs: ints([256, 512, 1024, 2048, 4096, 8192], { min: 2, doc: "S values trained (part b)" }),
  steps: int(3, { min: 1, doc: "steps per (S, policy); the first is warm-up for tokens/s" }),
  data: oneOf("brown", ["brown", "repeat"], {
    doc: "batches: the Brown corpus, or one random sequence repeated",
  }),
  lossSeq: int(512, { min: 2, doc: "S of the loss curves" }),
  lossSteps: int(12, { min: 1, doc: "steps of the loss curves" }),
  lr: num(3e-3, { above: 0, doc: "AdamW learning rate" }),
  seed: int(1, { min: 0, doc: "seed of the weights and of the batches" }),
  timelineSeq: int(1024, { min: 2, doc: "S of the memory timeline (part c)" }),
  maxTimelinePoints: int(3000, { min: 2, doc: "points kept per timeline chart" }),
};

type Config = ConfigOf<typeof defaults>;

/** A planning policy and the paper's figure for it (Llama3-8B, 1× A100 80 GB). */
interface PlanPolicy {
  /** Key in summary.json. */
  id: string;
  /** {@link describePolicy} of the policy. */
  label: string;
  policy: MemoryPolicy;
  paper: number | null;
  paperLabel: string;
}

const planPolicy = (
  id: string,
  policy: MemoryPolicy,
  paper: number | null = null,
  paperLabel = "—",
): PlanPolicy => ({ id, label: describePolicy(policy), policy, paper, paperLabel });

/**
 * The six planning policies: the paper's two baselines (transformers' LM head, with fp32
 * upcast copies of the logits), ours, and MsT.
 */
const PLAN_POLICIES: PlanPolicy[] = [
  planPolicy("standardHf", POLICIES.hfStandard, 5000, "≈5K"),
  planPolicy("checkpointHf", POLICIES.hfCheckpoint, 15000, "≈15K"),
  planPolicy("standard", POLICIES.standard),
  planPolicy("checkpoint", POLICIES.checkpoint),
  planPolicy("mst", POLICIES.mst),
  planPolicy("mstOptimizerInBackward", POLICIES.mstOib, 60000, "60K"),
];

/** The two policies trained for real; `id` is the label, `key` the summary key. */
const TRAIN_POLICIES = [
  { key: "standard", policy: POLICIES.standard },
  { key: "mst", policy: POLICIES.mst },
].map((p) => ({ ...p, id: describePolicy(p.policy) }));

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const fmtTokens = (n: number) => n.toLocaleString("en-US");
const roundOrNull = (x: number | null, digits = 2) => x === null ? null : round(x, digits);
const ratioOrNull = (a: number | null, b: number | null, digits = 3) =>
  a === null || b === null ? null : round(a / b, digits);
const fmtDelta = (d: number) => d === 0 ? "0" : d.toExponential(2);
const maxOrNull = (xs: (number | null)[]) =>
  xs.reduce<number | null>((m, x) => x === null ? m : Math.max(m ?? 0, x), null);
/** max |x_i − y_i| over the steps where both losses exist; null when none (meta device). */
const maxAbsDelta = (x: (number | null)[], y: (number | null)[]) =>
  maxOrNull(x.map((a, i) => a === null || y[i] == null ? null : Math.abs(a - y[i]!)));

/** Part a: the longest sequence and the breakdown at one S, on the meta device. */
async function planning(ctx: ExperimentContext<Config>) {
  const c = ctx.config;
  const cfg = getPreset(c.planPreset);
  const dtype = parseDtype(c.planDtype, "planDtype");
  const budget = parseBytes(c.budget);
  ctx.log(
    `a. planning ${cfg.name} (${(parameterCount(cfg) / 1e9).toFixed(2)} B parameters, ${dtype}) ` +
      `in ${c.budget} on the meta device`,
  );
  // sweep functions return what later parts need (a resumed run gets it from the journal)
  const maxSeqs = await ctx.sweep("max S", PLAN_POLICIES, async (p) => {
    const t0 = performance.now();
    const r = await maxSequence({ cfg, policy: p.policy, dtype, budget });
    ctx.record({
      kind: "max-seq",
      policy: p.label,
      maxSeq: r.maxSeq,
      paper: p.paper,
      paperLabel: p.paper === null ? null : p.paperLabel,
      peakGiB: r.plan ? round(r.plan.peakBytes / GiB, 3) : null,
      probes: r.probes.length,
      ms: Math.round(performance.now() - t0),
    });
    ctx.log(`   ${p.label.padEnd(44)} max S = ${fmtTokens(r.maxSeq)} (paper ${p.paperLabel})`);
    return r.maxSeq;
  });
  const maxSeq = Object.fromEntries(PLAN_POLICIES.map((p, i) => [p.id, maxSeqs[i]]));
  const planned = await ctx.sweep(`S=${c.breakdownSeq}`, PLAN_POLICIES, async (p) => {
    const plan = await planStep({
      cfg,
      policy: p.policy,
      dtype,
      budget: Infinity,
      seq: c.breakdownSeq,
    });
    for (const tag of TAGS) {
      const b = plan.breakdown[tag] ?? 0;
      if (b > 0) {
        ctx.record({
          kind: "breakdown",
          policy: p.label,
          seq: c.breakdownSeq,
          tag,
          bytes: b,
          GiB: round(b / GiB, 3),
        });
      }
    }
    ctx.log(
      `   S=${c.breakdownSeq} ${p.label.padEnd(44)} peak ${(plan.peakBytes / GiB).toFixed(2)} GiB`,
    );
    return { peak: plan.peakBytes, breakdown: { ...plan.breakdown } as Record<string, number> };
  });
  const breakdowns = Object.fromEntries(PLAN_POLICIES.map((p, i) => [p.id, planned[i]]));

  const order = PLAN_POLICIES.map((p) => p.label);
  ctx.chart(
    "max-seq",
    barsWithReference({
      title: `${cfg.name}: longest trainable sequence in ${c.budget} (${dtype}), meta device`,
      x: "policy",
      y: "maxSeq",
      reference: "paper",
      referenceLabel: "paperLabel",
      referenceName: "paper",
      referenceTitle: "the paper's figure (1× A100 80 GB)",
      yTitle: "max sequence length (tokens)",
      order,
    }),
    { kind: "max-seq" },
  );
  ctx.chart(
    "breakdown",
    stackedPeak({
      title: `${cfg.name} at S=${fmtTokens(c.breakdownSeq)}: peak memory by tag (${dtype})`,
      y: "policy",
      stack: "tag",
      x: "bytes",
      budget,
      order,
    }),
    { kind: "breakdown" },
  );
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
  const grid = c.seqs.flatMap((seq) => TRAIN_POLICIES.map((p) => ({ seq, ...p })));
  const points = await ctx.sweep("train", grid, async ({ seq, id, policy }) => {
    const data = await makeBatches(c.data, cfg, seq, c.seed);
    const r = await runSteps(dev, cfg, policy, data, {
      steps: c.steps,
      init: { seed: c.seed },
      adamw: { lr: c.lr },
      onWarning: (w) => ctx.log(`   warning: ${w}`),
    });
    const losses = r.losses;
    ctx.record({
      kind: "train",
      seq,
      policy: id,
      peakBytes: r.peakBytes,
      peakMiB: round(r.peakBytes / MiB, 3),
      peakPhase: r.peakPhase,
      tokensPerSec: roundOrNull(r.tokensPerSec, 1),
      stepMs: r.steps.map((s) => Math.round(s.ms)),
      // spread of the timed steps (after the warm-up): min / median / max
      stepMsMin: roundOrNull(r.timing?.minMs ?? null, 1),
      stepMsMedian: roundOrNull(r.timing?.medianMs ?? null, 1),
      stepMsMax: roundOrNull(r.timing?.maxMs ?? null, 1),
      mlpChunks: r.chunks.mlp,
      headChunks: r.chunks.head,
      losses: losses.map((l) => roundOrNull(l, 5)),
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
        `${r.tokensPerSec?.toFixed(0) ?? "—"} tok/s, losses ${
          losses.map((l) => l?.toFixed(4) ?? "—").join(" ")
        }`,
    );
    return { seq, policy: id, peakBytes: r.peakBytes, tokensPerSec: r.tokensPerSec, losses };
  });

  ctx.log(`   loss curves at S=${c.lossSeq}, ${c.lossSteps} steps`);
  const curveList = await ctx.sweep("loss curve", TRAIN_POLICIES, async ({ id, policy }) => {
    const data = await makeBatches(c.data, cfg, c.lossSeq, c.seed);
    const r = await runSteps(dev, cfg, policy, data, {
      steps: c.lossSteps,
      init: { seed: c.seed },
      adamw: { lr: c.lr },
      onStep: (s) =>
        ctx.record({ kind: "loss", policy: id, seq: c.lossSeq, step: s.step, loss: s.loss }),
    });
    return r.losses;
  });
  const curves = Object.fromEntries(TRAIN_POLICIES.map((p, i) => [p.id, curveList[i]]));

  // max |Δloss| between the policies, over the sweep and the curves (null: no losses, meta)
  const [a, b] = TRAIN_POLICIES.map((p) => p.id);
  const deltas = c.seqs.map((seq) =>
    maxAbsDelta(
      points.find((p) => p.seq === seq && p.policy === a)!.losses,
      points.find((p) => p.seq === seq && p.policy === b)!.losses,
    )
  );
  const maxDelta = maxOrNull([...deltas, maxAbsDelta(curves[a], curves[b])]);

  const order = TRAIN_POLICIES.map((p) => p.id);
  const vsSeq = `${cfg.name} on ${dev.kind}`;
  ctx.chart(
    "peak-vs-seq",
    metricVsSeq({
      title: `${vsSeq}: peak memory vs sequence length`,
      y: "peakBytes",
      yFormat: "bytes",
      yLog: true,
      yTitle: "peak allocated",
      order,
    }),
    { kind: "train" },
  );
  ctx.chart(
    "throughput",
    metricVsSeq({
      title: `${vsSeq}: training throughput vs sequence length`,
      y: "tokensPerSec",
      yTitle: "tokens / s",
      order,
    }),
    { kind: "train" },
  );
  const delta = maxDelta === null ? "no losses on meta" : `max |Δ| ${fmtDelta(maxDelta)}`;
  ctx.chart(
    "loss-curves",
    lossCurves({
      title: `${cfg.name}, S=${c.lossSeq}, ${c.data} data: loss per step (${delta})`,
      baseline: TRAIN_POLICIES[0].id,
      order,
    }),
    { kind: "loss" },
  );
  return { cfg, device: dev.kind, points, curves, maxDelta };
}

/** Part c: the memory timeline of one step, MsT and standard. */
async function timeline(ctx: ExperimentContext<Config>) {
  const c = ctx.config;
  const dev = await ctx.device();
  const cfg = getPreset(c.preset);
  ctx.log(`c. memory timeline of one step of ${cfg.name} at S=${c.timelineSeq} on ${dev.kind}`);
  const policies = [...TRAIN_POLICIES].reverse();
  const figures = await ctx.sweep("timeline", policies, async ({ id, policy }) => {
    const t = await stepTimeline(dev, {
      cfg,
      policy,
      seq: c.timelineSeq,
      data: c.data,
      seed: c.seed,
    });
    for (const row of timelineRows(t.events, { policy: id })) ctx.record(row);
    ctx.log(
      `   ${id.padEnd(20)} ${t.events.length} events, peak ${
        (t.peakBytes / MiB).toFixed(2)
      } MiB in ${t.peakPhase}`,
    );
    return {
      events: t.events.length,
      peakMiB: round(t.peakBytes / MiB, 3),
      peakPhase: t.peakPhase,
      startMiB: round(t.startBytes / MiB, 3),
    };
  });
  const out = Object.fromEntries(policies.map((p, i) => [p.key, figures[i]]));
  ctx.chart(
    "memory-timeline",
    memoryTimeline({
      title: `${cfg.name} at S=${c.timelineSeq}: live memory through one training step`,
      order: TRAIN_POLICIES.map((p) => p.id).reverse(),
      maxPoints: c.maxTimelinePoints,
    }),
    { kind: "timeline" },
  );
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
        tokensPerSecStandard: roundOrNull(tStd.tokensPerSec, 1),
        tokensPerSecMst: roundOrNull(tMst.tokensPerSec, 1),
        throughputRatioMstOverStandard: ratioOrNull(tMst.tokensPerSec, tStd.tokensPerSec),
        maxAbsDeltaLoss: train.maxDelta,
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
            : `${ratioOrNull(tMst.tokensPerSec, tStd.tokensPerSec) ?? "—"} at S=${largest}`,
          `${train.cfg.name} on ${train.device}`,
        ],
        [
          "same loss with and without MsT",
          "identical convergence",
          train.maxDelta === null
            ? "— (meta device: no losses)"
            : `max |Δloss| ${fmtDelta(train.maxDelta)}`,
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
        const d = maxAbsDelta(s.losses, m.losses);
        return [
          seq,
          round(s.peakBytes / MiB),
          round(m.peakBytes / MiB),
          round(s.peakBytes / m.peakBytes),
          roundOrNull(s.tokensPerSec),
          roundOrNull(m.tokensPerSec),
          d === null ? null : fmtDelta(d),
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
        `step after the first (warm-up), with the min / median / max step times recorded in the metrics. ` +
        `Both policies see the same batches from the same initialization. ` +
        `On a 2-core machine shared with other work, tokens/s vary by tens of percent between runs.` +
        (meta ? " On the meta device nothing is computed: losses and tokens/s are null." : ""),
    );
  },
});
