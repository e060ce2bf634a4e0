/**
 * `deno task exp lora-long`: long-context fine-tuning as people run it (issue 21). Max S in
 * 80 GiB (bf16, meta, no driver overhead) for full fine-tuning, LoRA and QLoRA (r=32, alpha=16,
 * all seven projections; QLoRA: NF4 base), each under recomputation, MsT + recomputation and MsT
 * + recomputation + checkpoint offload, for the seven full-size presets; llama3-8b's peak by tag
 * at one S per mode; llama3-tiny trained with QLoRA + MsT at the longest S that fits the device
 * budget (bisected on a meta device with the device's limits and lavapipe's overhead).
 */

import {
  barsWithReference,
  breakdownRows,
  bytes,
  defineExperiment,
  describePolicy,
  dtype,
  getPreset,
  int,
  lossCurves,
  maxSeqOnGpu,
  maxSequence,
  type MemoryPolicy,
  mib,
  OVERHEADS,
  parseBytes,
  planStep,
  planTarget,
  POLICIES,
  preset,
  ratio,
  someOf,
  stackedPeak,
  trainAt,
} from "../mod.ts";

const MODELS = [
  "llama3-8b",
  "llama2-7b",
  "mistral-7b",
  "qwen2-7b",
  "gemma2-9b",
  "gemma2-2b",
  "llama3.3-70b",
];
const LORA = { r: 32, alpha: 16 }; // all seven targets (the default)
const MODES: Record<string, MemoryPolicy> = {
  full: {},
  lora: { lora: LORA },
  qlora: { lora: { ...LORA, base: "nf4" } },
};
const IDS = ["checkpoint", "mst", "mstOffload"] as const;
const policyOf = (mode: string, id: string): MemoryPolicy => ({
  ...POLICIES[id as (typeof IDS)[number]],
  ...MODES[mode],
});

export default defineExperiment({
  name: "lora-long",
  description: "Full fine-tuning vs LoRA vs QLoRA (r=32, all linears), ± MsT and checkpoint " +
    "offload: max S in 80 GiB for seven models; llama3-tiny QLoRA + MsT trained at its S_max",
  defaults: {
    models: someOf(MODELS, MODELS, { doc: "the full-size models planned" }),
    modes: someOf(Object.keys(MODES), Object.keys(MODES), { doc: "fine-tuning modes" }),
    policies: someOf([...IDS], [...IDS], { doc: "memory policies under each mode" }),
    budget: bytes("80GiB", { doc: "device memory of the planned GPU" }),
    planDtype: dtype("bf16", { doc: "how the planner counts floats" }),
    resolution: int(1024, { min: 1, doc: "max S is exact to this many tokens" }),
    breakdownSeq: int(65536, { min: 1, doc: "S of llama3-8b's peak breakdown per mode" }),
    tiny: preset("llama3-tiny", { doc: "model trained on the device (QLoRA + MsT)" }),
    deviceBudget: bytes("64MiB", { doc: "live-bytes budget of the device run" }),
    tinyResolution: int(64, { min: 1, doc: "search resolution of the device run's S" }),
    steps: int(3, { min: 1, doc: "steps trained on the device" }),
    seed: int(1, { min: 0, doc: "seed of the weights and the batch" }),
  },
  quick: {
    models: ["llama3-8b", "llama3.3-70b"],
    policies: ["checkpoint", "mst"],
    resolution: 65536,
    breakdownSeq: 8192,
    deviceBudget: "8MiB",
    steps: 2,
  },
  async run(ctx) {
    const c = ctx.config;
    const plan = planTarget(c);
    const cells = c.models.flatMap((model) =>
      c.modes.flatMap((mode) => c.policies.map((id) => ({ model, mode, id })))
    );
    const found = await ctx.sweep("cell", cells, async ({ model, mode, id }) => {
      const policy = policyOf(mode, id);
      const r = await maxSeqOnGpu({ ...plan, cfg: getPreset(model), policy }, {
        granularity: c.resolution,
      });
      const name = describePolicy(policy);
      ctx.record({ kind: "max-seq", model, mode, policy: name, maxSeq: r.maxSeq });
      ctx.log(`   ${model} ${name}: max S ${r.maxSeq} (${r.limitedBy})`);
      return { model, mode, id, maxSeq: r.maxSeq };
    });
    const at = (model: string, mode: string, id: string) =>
      found.find((f) => f.model === model && f.mode === mode && f.id === id)?.maxSeq ?? null;

    const cfg8 = getPreset("llama3-8b");
    const mst = c.policies.includes("mst") ? "mst" : c.policies[0];
    const order = c.modes.map((m) => describePolicy(policyOf(m, mst)));
    for (const mode of c.modes) {
      const p = await planStep({
        ...plan,
        cfg: cfg8,
        policy: policyOf(mode, mst),
        seq: c.breakdownSeq,
        budget: Infinity,
        overhead: OVERHEADS.none,
      });
      for (const r of breakdownRows(p, { policy: describePolicy(policyOf(mode, mst)) })) {
        ctx.record(r);
      }
    }

    const dev = await ctx.device();
    const tiny = getPreset(c.tiny);
    const devBudget = parseBytes(c.deviceBudget);
    const qlora = policyOf("qlora", "mst");
    const search = await maxSequence(
      {
        cfg: tiny,
        policy: qlora,
        dtype: "f32",
        budget: devBudget,
        limits: dev.limits,
        fitOn: "live",
      },
      { granularity: c.tinyResolution, start: 64 },
    );
    dev.setBudget(devBudget);
    const run = await trainAt(dev, tiny, qlora, search.maxSeq, {
      data: "repeat",
      seed: c.seed,
      steps: c.steps,
      onStep: (s) =>
        ctx.record({ kind: "train", policy: describePolicy(qlora), step: s.step, loss: s.loss }),
    });
    ctx.log(
      `   ${tiny.name} QLoRA + MsT on ${dev.kind}: S ${search.maxSeq}, peak ${
        mib(run.peakBytes)
      } MiB`,
    );

    ctx.chart(
      "max-seq",
      barsWithReference({
        title:
          `Longest trainable S in ${c.budget} (${c.planDtype}, meta device), by mode and policy`,
        x: "model",
        y: "maxSeq",
        group: "policy",
        yLog: true,
        width: 960,
      }),
      { kind: "max-seq" },
    );
    ctx.chart(
      "breakdown",
      stackedPeak({
        title:
          `llama3-8b at S=${c.breakdownSeq} (${c.planDtype}): peak by tag per fine-tuning mode`,
        y: "policy",
        stack: "tag",
        x: "bytes",
        budget: plan.budget,
        order,
        phase: "phase",
      }),
      { kind: "breakdown" },
    );
    ctx.chart(
      "tiny-loss",
      lossCurves({
        title: `${tiny.name}, QLoRA + MsT on ${dev.kind}, S=${search.maxSeq} in ${c.deviceBudget}`,
      }),
      { kind: "train" },
    );

    const cols = c.modes.flatMap((mode) => c.policies.map((id) => ({ mode, id })));
    const gain = (m: string, mode: string, id: string) =>
      ratio(at(m, mode, id), at(m, mode, "checkpoint"));
    ctx.summary({
      budget: c.budget,
      maxSeq: Object.fromEntries(c.models.map((m) => [
        m,
        Object.fromEntries(cols.map(({ mode, id }) => [`${mode}/${id}`, at(m, mode, id)])),
      ])),
      tiny: { seq: search.maxSeq, peakBytes: run.peakBytes, losses: run.losses },
    });
    ctx.table({
      title: `Longest trainable S in ${c.budget} (${plan.dtype}, meta device, no driver overhead)`,
      columns: ["model", ...cols.map(({ mode, id }) => `${mode}: ${describePolicy(POLICIES[id])}`)],
      rows: c.models.map((m) => [m, ...cols.map(({ mode, id }) => at(m, mode, id))]),
    });
    ctx.table({
      title: "Ratios of max S: LoRA / full and QLoRA / full under one policy; MsT gain: the " +
        "policy / recomputation under one mode",
      columns: [
        "model",
        "policy",
        "LoRA / full",
        "QLoRA / full",
        ...c.modes.map((m) => `gain, ${m}`),
      ],
      rows: c.models.flatMap((m) =>
        c.policies.map((id) => [
          m,
          describePolicy(POLICIES[id]),
          ratio(at(m, "lora", id), at(m, "full", id)),
          ratio(at(m, "qlora", id), at(m, "full", id)),
          ...c.modes.map((mode) => gain(m, mode, id)),
        ])
      ),
    });
    ctx.note(
      `${tiny.name}: S bisected on a meta device with ${dev.kind}'s limits and lavapipe's overhead (f32, live bytes within ${c.deviceBudget}); peak ${
        mib(run.peakBytes, 3)
      } MiB over ${c.steps} steps. Ratios are "—" where a denominator is 0 (the model does not fit at all).`,
    );
  },
});
