/**
 * `deno task exp chunk-ablation`: how many mini-sequences M pay. M of the MLP and M of the LM
 * head are swept independently (the other part on `"auto"`, recomputation on) for llama3-tiny
 * trained on the device (peak and tokens/s) and for Llama3-8B at 60K planned on the meta device
 * (peak), beside the M the auto rule resolves to. The knee: the smallest M whose peak is within
 * `knee` (5%) of the sweep's minimum — more chunks than that stop paying. `--quick` is the
 * head-chunk sweep alone, at one small S.
 */

import {
  bool,
  type Chunks,
  defineExperiment,
  dtype,
  formatBytes,
  getPreset,
  int,
  ints,
  maxOf,
  metricVsSeq,
  mib,
  num,
  parseDtype,
  planStep,
  preset,
  round,
  trainAt,
} from "../mod.ts";

export default defineExperiment({
  name: "chunk-ablation",
  description: "M of the MLP and of the LM head swept independently (1…64 and auto): peak and " +
    "tokens/s of llama3-tiny on the device, peak of Llama3-8B at 60K on the meta device; the knee",
  defaults: {
    preset: preset("llama3-tiny", { doc: "model trained on the device" }),
    seqs: ints([4096, 8192], { min: 2, doc: "S values trained on the device" }),
    ms: ints([1, 2, 4, 8, 16, 32, 64], { min: 1, doc: "M values swept (plus auto)" }),
    mlp: bool(true, { doc: "sweep the MLP's M (head on auto)" }),
    head: bool(true, { doc: "sweep the LM head's M (MLP on auto)" }),
    steps: int(3, { min: 2, doc: "steps per point; the first is warm-up for tokens/s" }),
    planPreset: preset("llama3-8b", { doc: "model planned on the meta device" }),
    planSeq: int(61440, { min: 2, doc: "S planned on the meta device" }),
    planDtype: dtype("bf16", { doc: "how the planner counts floats" }),
    knee: num(0.05, { above: 0, doc: "knee: smallest M within this fraction of the min peak" }),
    seed: int(1, { min: 0, doc: "seed of the weights and the batch" }),
  },
  quick: { seqs: [1024], mlp: false },
  async run(ctx) {
    const c = ctx.config;
    const dev = await ctx.device();
    const cfg = getPreset(c.preset);
    const planCfg = getPreset(c.planPreset);
    const parts = (["mlp", "head"] as const).filter((p) => c[p]);
    const values: Chunks[] = [...c.ms, "auto"];
    const targets = [
      ...c.seqs.map((seq) => ({ on: dev.kind, seq })),
      { on: `meta (${planCfg.name})`, seq: c.planSeq },
    ];
    const grid = targets
      .flatMap((g) => parts.flatMap((part) => values.map((M) => ({ ...g, part, M }))))
      .map((p) => ({ ...p, name: `${p.on} ${p.part} M=${p.M}` })); // the progress line
    ctx.log(`${cfg.name} on ${dev.kind} at S=${c.seqs}; ${planCfg.name} on meta at S=${c.planSeq}`);
    const plan = { cfg: planCfg, dtype: parseDtype(c.planDtype, "planDtype"), budget: Infinity };
    const train = { data: "repeat", seed: c.seed, steps: c.steps };
    const points = await ctx.sweep("M", grid, async ({ on, seq, part, M }) => {
      const policy = { checkpoint: true, mst: { mlp: "auto", head: "auto", [part]: M } as const };
      const planned = on !== dev.kind;
      const r = planned
        ? await planStep({ ...plan, policy, seq })
        : await trainAt(dev, cfg, policy, seq, train);
      const tokensPerSec = "tokensPerSec" in r ? round(r.tokensPerSec, 1) : null;
      const ran = r.chunks?.[part] ?? null; // the M actually run ("auto" resolved)
      const auto = M === "auto";
      const series = `${part}, S=${seq}`;
      const row = { on, part, seq, M: ran, auto, peakBytes: r.peakBytes, tokensPerSec };
      ctx.record({ kind: planned ? "plan" : "train", ...row, requested: M, series });
      const resolved = auto ? ` (→ ${ran})` : "";
      const speed = tokensPerSec ? `, ${tokensPerSec} tok/s` : "";
      const peak = `${mib(r.peakBytes).toFixed(2)} MiB`;
      ctx.log(`   ${on}: ${part} M=${M}${resolved}, S=${seq}: peak ${peak}${speed}`);
      return row;
    });

    // each sweep's knee: the smallest M whose peak is within `knee` of the minimum
    const keyOf = (p: { on: string; part: string; seq: number }) => `${p.on} ${p.part} S=${p.seq}`;
    const sweeps = [...new Set(points.map(keyOf))].map((key) => {
      const pts = points.filter((p) => keyOf(p) === key);
      const swept = pts.filter((p) => !p.auto).sort((a, b) => a.M! - b.M!);
      const min = Math.min(...swept.map((p) => p.peakBytes));
      const knee = swept.find((p) => p.peakBytes <= min * (1 + c.knee))!;
      const best = maxOf(swept.map((p) => p.tokensPerSec));
      return { key, first: swept[0], min, knee, best, auto: pts.find((p) => p.auto)! };
    });
    const chart = (name: string, kind: string, y: string, title: string) => {
      const peak = y === "peakBytes";
      const args = {
        title,
        y,
        yFormat: peak ? "bytes" as const : undefined,
        yTitle: peak ? "peak" : "tokens/s",
        x: "M",
        xTitle: "M (◇: auto)",
        series: "series",
      };
      ctx.chart(name, metricVsSeq({ ...args, highlight: "auto" }), { kind });
    };
    const onDev = `${cfg.name} on ${dev.kind}`;
    chart("peak-vs-m", "train", "peakBytes", `${onDev}: peak vs M`);
    chart("throughput-vs-m", "train", "tokensPerSec", `${onDev}: tokens/s vs M`);
    chart(
      "plan-peak-vs-m",
      "plan",
      "peakBytes",
      `${planCfg.name}, S=${c.planSeq}, meta: peak vs M`,
    );
    ctx.summary({
      knee: c.knee,
      sweeps: Object.fromEntries(sweeps.map((g) => [g.key, {
        kneeM: g.knee.M,
        kneePeakMiB: mib(g.knee.peakBytes),
        minPeakMiB: mib(g.min),
        autoM: g.auto.M,
        autoPeakMiB: mib(g.auto.peakBytes),
        kneeTokensPerSec: g.knee.tokensPerSec,
        bestTokensPerSec: g.best,
      }])),
    });
    ctx.table({
      title: `Where more chunks stop paying: the knee is the smallest M within ${c.knee * 100}% ` +
        `of the minimum peak (recomputation on, the other part on auto)`,
      columns: [
        "sweep",
        "knee M",
        "peak: smallest M → knee → min",
        "auto → M",
        "peak at auto",
        "tok/s at knee / best",
      ],
      rows: sweeps.map((g) => [
        g.key,
        g.knee.M,
        [g.first.peakBytes, g.knee.peakBytes, g.min].map(formatBytes).join(" → "),
        g.auto.M,
        formatBytes(g.auto.peakBytes),
        g.best === null ? "—" : `${g.knee.tokensPerSec} / ${g.best}`,
      ]),
    });
    ctx.note(
      `Every point runs with recomputation, the other part on auto, so a sweep isolates one ` +
        `part's M. "auto → M" is the M the auto rule resolved to (runSteps' chunks). tokens/s: ` +
        `${cfg.name}'s median step after the warm-up on ${dev.kind} (noisy on a shared machine); ` +
        `${planCfg.name} is planned (${c.planDtype}) on the meta device, which has no tokens/s.`,
    );
  },
});
