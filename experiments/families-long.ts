/**
 * `deno task exp families-long`: the paper's extension claims (Llama2-7B 84K; Qwen2, Mistral,
 * Gemma-2 12–24× longer). Per family: max S in 80 GiB (bf16, meta) of the paper's terms under
 * its profile (HF) and ours; its tiny preset on the device at two S, standard (HF) vs MsT: loss
 * and peaks.
 */

import {
  barsWithReference,
  bytes,
  defineExperiment,
  dtype,
  getPreset,
  int,
  ints,
  maxAbsDelta,
  maxOf,
  maxSeqOnGpu,
  mib,
  MST_FAMILY_TERMS as PLANNED,
  oneOf,
  planTarget,
  POLICIES,
  ratio,
  someOf,
  termRatio,
  trainAt,
} from "../mod.ts";

const FAMILIES: { name: string; tiny: string; paper?: number }[] = [
  { name: "llama2-7b", tiny: "llama2-tiny", paper: 84000 },
  { name: "mistral-7b", tiny: "mistral-tiny" },
  { name: "qwen2-7b", tiny: "qwen2-tiny" },
  { name: "gemma2-9b", tiny: "gemma2-tiny" },
  { name: "gemma2-2b", tiny: "gemma2-tiny" },
];
const MODELS = FAMILIES.map((f) => f.name);
const PLAN_IDS = Object.keys(PLANNED) as (keyof typeof PLANNED)[]; // the paper's (HF) and ours
const label = (id: keyof typeof PLANNED) => PLANNED[id].label;

export default defineExperiment({
  name: "families-long",
  description: "Llama2, Mistral, Qwen2, Gemma-2: max S in 80 GiB beside the paper; tinies trained",
  defaults: {
    models: someOf(MODELS, MODELS, { doc: "the full-size models planned" }),
    budget: bytes("80GiB", { doc: "device memory of the planned GPU" }),
    planDtype: dtype("bf16", { doc: "how the planner counts floats" }),
    resolution: int(1, { min: 1, doc: "max S is exact to this many tokens" }),
    seqs: ints([1024, 4096], { min: 2, doc: "the two S each tiny model trains at" }),
    steps: int(3, { min: 1, doc: "steps per (tiny model, S, policy)" }),
    data: oneOf("repeat", ["repeat", "brown"], { doc: "batches of the tiny runs" }),
    seed: int(1, { min: 0, doc: "seed of the weights and of the batches" }),
  },
  quick: { resolution: 512, seqs: [256, 512], steps: 2 },
  async run(ctx) {
    const c = ctx.config;
    const plan = planTarget(c);
    const search = { granularity: c.resolution };
    const families = FAMILIES.filter((f) => c.models.includes(f.name));
    const planned = await ctx.sweep("family", families, async ({ name: model, paper }) => {
      const cfg = getPreset(model);
      const seqs = await ctx.sweep(model, PLAN_IDS, async (id) => {
        const { maxSeq } = await maxSeqOnGpu({ ...plan, cfg, policy: PLANNED[id].policy }, search);
        const ref = id === "mstOibHf" ? paper ?? null : null; // the paper's MsT, its profile
        ctx.record({ kind: "max-seq", model, policy: label(id), maxSeq, paper: ref });
        return maxSeq;
      });
      const maxSeq = Object.fromEntries(PLAN_IDS.map((id, i) => [id, seqs[i]]));
      const over = (id: string) => termRatio(PLANNED, maxSeq, id, "hfStandard", 1); // one profile
      const mst = over("mstHf");
      const oib = over("mstOibHf");
      ctx.log(`   ${model}: max S ${seqs.join(" / ")}; MsT / standard ${mst}× (${oib}× with OiB)`);
      return { model, paper: paper ?? null, maxSeq, mst, oib };
    });
    const dev = await ctx.device();
    const tinies = [...new Set(families.map((f) => f.tiny))];
    const pairs = tinies.flatMap((name) => c.seqs.map((seq) => ({ name, seq })));
    const trained = await ctx.sweep("train", pairs, async ({ name: tiny, seq }) => {
      const cfg = getPreset(tiny);
      const at = { model: tiny, run: `${tiny} S=${seq}`, seq };
      const train = async (id: "hfStandard" | "mst") => {
        const r = await trainAt(dev, cfg, POLICIES[id], seq, {
          data: c.data,
          seed: c.seed,
          steps: c.steps,
        });
        const { peakBytes, tokensPerSec, losses } = r;
        ctx.record({ kind: "train", ...at, policy: label(id), peakBytes, tokensPerSec, losses });
        return { MiB: mib(peakBytes), losses };
      };
      const std = await train("hfStandard");
      const mst = await train("mst");
      const delta = maxAbsDelta(std.losses, mst.losses);
      ctx.log(`   ${tiny} S=${seq}: peak ${std.MiB} → ${mst.MiB} MiB, |Δloss| ≤ ${delta}`);
      return { tiny, seq, std: std.MiB, mst: mst.MiB, delta };
    });
    ctx.chart(
      "max-seq",
      barsWithReference({
        title: `Longest trainable sequence in ${c.budget} (${c.planDtype}, meta device)`,
        x: "model",
        y: "maxSeq",
        group: "policy",
        reference: "paper",
        referenceName: "paper",
        referenceTitle: "the paper's Llama2-7B figure (1× A100 80 GB)",
        yLog: true,
        width: 960,
      }),
      { kind: "max-seq" },
    );
    ctx.chart(
      "tiny-peak",
      barsWithReference({
        title: `Tiny presets on ${dev.kind}: peak, standard (HF) vs MsT + recomputation`,
        x: "run",
        y: "peakBytes",
        group: "policy",
        yFormat: "bytes",
      }),
      { kind: "train" },
    );
    ctx.summary({
      budget: c.budget,
      maxSeq: Object.fromEntries(planned.map((p) => [p.model, p.maxSeq])),
      ratioMstOverStandardHf: Object.fromEntries(planned.map((p) => [p.model, p.mst])),
      ratioMstOibOverStandardHf: Object.fromEntries(planned.map((p) => [p.model, p.oib])),
      paper: { llama2MaxSeqMst: 84000, ratioRange: [12, 24] },
      maxAbsDeltaLoss: maxOf(trained.map((t) => t.delta)),
    });
    ctx.table({
      title: `Longest trainable S in ${c.budget} (${plan.dtype}, meta device), the paper beside`,
      columns: ["model", ...PLAN_IDS.map(label), "MsT / standard (HF)", "paper"],
      rows: planned.map((p) => [
        p.model,
        ...PLAN_IDS.map((id) => p.maxSeq[id]),
        `${p.mst}× (${p.oib}× with OiB)`,
        p.paper ? `${p.paper / 1000}K with MsT` : "12–24× longer (HF integration)",
      ]),
    });
    ctx.table({
      title: `Tiny presets on ${dev.kind}, ${c.steps} steps: standard (HF) vs MsT`,
      columns: ["model", "S", "peak standard (MiB)", "peak MsT (MiB)", "÷", "max |Δloss|"],
      rows: trained.map((t) => {
        const delta = t.delta === null ? "— (meta)" : String(+t.delta.toPrecision(3));
        return [t.tiny, t.seq, t.std, t.mst, ratio(t.std, t.mst), delta];
      }),
    });
    ctx.note(
      `MsT / standard (HF): both under the paper's profile; "— ours": our runtime. OiB: ` +
        `optimizer-in-backward. ${plan.dtype}, datacenter GPU; fits: live bytes and reserve.`,
    );
  },
});
