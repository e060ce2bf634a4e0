/**
 * `deno task exp convergence`: MsT changes memory, not training. Each model is trained on the
 * Brown corpus twice from the same weights on the same batches, standard vs MsT +
 * recomputation, with the validation loss every `evalEvery` steps (the train task's
 * `--eval-every`: `validationBatches` of the data source, `Model.evaluate`). Train and
 * validation curves, wall time, and `maxAbsDeltaLoss`: the largest |Δloss| over all steps.
 * `f16` (default): standard in mixed precision (f16 storage) beside them, `maxAbsDeltaLossF16`.
 */

import {
  bool,
  defineExperiment,
  describePolicy,
  getPreset,
  int,
  lossCurves,
  makeBatches,
  maxAbsDelta,
  maxOf,
  Model,
  num,
  POLICIES,
  presets,
  ratio,
  round,
  runSteps,
  Trainer,
} from "../mod.ts";

export default defineExperiment({
  name: "convergence",
  description: "Brown corpus, standard vs MsT + recomputation: the loss curves coincide; wall time",
  defaults: {
    presets: presets(["llama3-tiny", "gemma2-tiny"], { doc: "models trained" }),
    seq: int(2048, { min: 2, doc: "sequence length S" }),
    steps: int(300, { min: 1, doc: "training steps per run" }),
    evalEvery: int(25, { min: 1, doc: "validation loss every this many steps (and at the end)" }),
    evalBatches: int(4, { min: 1, doc: "validation windows of S tokens" }),
    lr: num(1e-3, { above: 0, doc: "AdamW learning rate" }),
    seed: int(1, { min: 0, doc: "seed of the weights and of the batch order" }),
    f16: bool(true, { doc: "also train standard in mixed precision f16 (WebGPU: shader-f16)" }),
  },
  quick: { seq: 512, steps: 40, evalEvery: 10 },
  async run(ctx) {
    const c = ctx.config;
    const RUNS = {
      standard: POLICIES.standard,
      mst: POLICIES.mst,
      f16: { dtype: "f16" as const },
    };
    const dev16 = () => ctx.createDevice(ctx.deviceKind, { floats: "f16" });
    const IDS = c.f16 ? ["standard", "mst", "f16"] as const : ["standard", "mst"] as const;
    const grid = c.presets.flatMap((name) =>
      IDS.map((id) => ({ name, id, label: `${name} ${id}` }))
    );
    const runs = await ctx.sweep("run", grid, async ({ name, id }) => {
      const dev = await (id === "f16" ? dev16() : ctx.device());
      const cfg = getPreset(name);
      const policy = describePolicy(RUNS[id]);
      const data = await makeBatches("brown", cfg, c.seq, c.seed);
      const validation = data.validationBatches!(c.evalBatches);
      const model = Model.build(dev, cfg, RUNS[id], { seed: c.seed });
      const trainer = new Trainer(dev, model, { adamw: { lr: c.lr } });
      const val: (number | null)[] = [];
      const evaluate = async (step: number) => {
        const loss = dev.kind === "meta" ? null : await model.evaluate(validation);
        ctx.record({ kind: "validation", model: name, policy, step, loss });
        val.push(loss);
      };
      const t0 = performance.now();
      try {
        await evaluate(0);
        const r = await runSteps(dev, cfg, RUNS[id], data, {
          trainer,
          steps: c.steps,
          onStep: async (s) => {
            ctx.record({ kind: "train", model: name, policy, step: s.step, loss: s.loss });
            if (s.step % c.evalEvery === 0 || s.step === c.steps) await evaluate(s.step);
          },
        });
        const seconds = round((performance.now() - t0) / 1000, 1);
        ctx.log(`   ${name} ${policy}: ${seconds} s, losses ${r.losses.at(-1)} / ${val.at(-1)}`);
        return { name, id, policy, losses: r.losses, val, seconds, tokensPerSec: r.tokensPerSec };
      } finally {
        model.dispose();
      }
    });

    const of = (name: string, id: string) => runs.find((r) => r.name === name && r.id === id)!;
    const [std, mst, half] = IDS.map((id) => describePolicy(RUNS[id]));
    const perModel = c.presets.map((name) => {
      const a = of(name, "standard");
      const b = of(name, "mst");
      const h = c.f16 ? of(name, "f16") : null;
      const train = maxAbsDelta(a.losses, b.losses);
      const val = maxAbsDelta(a.val, b.val);
      return { name, a, b, h, train, val, trainF16: h && maxAbsDelta(a.losses, h.losses) };
    });
    const maxF16 = maxOf(perModel.map((m) => m.trainF16));
    for (const { name, train } of perModel) {
      const delta = train === null ? "no losses on meta" : `max |Δ| ${train.toExponential(2)}`;
      const title = `${name}, Brown corpus, S=${c.seq}`;
      const args = { baseline: std, order: half ? [std, mst, half] : [std, mst] };
      const where = { model: name };
      const curves = (what: string) => lossCurves({ title: `${title}: ${what}`, ...args });
      ctx.chart(`train-${name}`, curves(`train loss (${delta})`), { kind: "train", where });
      ctx.chart(`validation-${name}`, curves("validation loss"), { kind: "validation", where });
    }
    const maxAbsDeltaLoss = maxOf(perModel.map((m) => m.train));
    ctx.summary({
      seq: c.seq,
      steps: c.steps,
      maxAbsDeltaLoss,
      maxAbsDeltaValLoss: maxOf(perModel.map((m) => m.val)),
      maxAbsDeltaLossF16: maxF16,
      models: Object.fromEntries(perModel.map(({ name, a, b, h, train, val }) => [name, {
        finalLoss: round(a.losses.at(-1) ?? null, 5),
        finalLossF16: round(h?.losses.at(-1) ?? null, 5),
        finalValLoss: round(a.val.at(-1) ?? null, 5),
        maxAbsDeltaLoss: train,
        maxAbsDeltaValLoss: val,
        wallSeconds: { standard: a.seconds, mst: b.seconds },
        tokensPerSec: { standard: round(a.tokensPerSec, 1), mst: round(b.tokensPerSec, 1) },
      }])),
    });
    const fmt = (x: number | null, d = 4) => x === null ? "—" : x.toFixed(d);
    ctx.table({
      title: `Brown corpus, S=${c.seq}, ${c.steps} steps: ${std} vs ${mst}`,
      columns: [
        "model",
        "loss: first → last",
        "validation: first → last",
        "max |Δ train|",
        "max |Δ validation|",
        "wall s (standard / MsT)",
        "time ratio",
      ],
      rows: perModel.map(({ name, a, b, train, val }) => [
        name,
        `${fmt(a.losses[0])} → ${fmt(a.losses.at(-1)!)}`,
        `${fmt(a.val[0])} → ${fmt(a.val.at(-1)!)}`,
        train === null ? "—" : train.toExponential(2),
        val === null ? "—" : val.toExponential(2),
        `${a.seconds} / ${b.seconds}`,
        ratio(b.seconds, a.seconds),
      ]),
    });
    ctx.note(
      `Both runs of a model start from the same weights (seed ${c.seed}) and read the same Brown ` +
        `windows in the same order; the validation loss is the mean over ${c.evalBatches} fixed ` +
        `windows of the validation split. MsT is exact, so the curves must coincide: ` +
        `maxAbsDeltaLoss = ${maxAbsDeltaLoss ?? "— (meta device)"} over every step. Wall time ` +
        `includes the validation passes; the machine's other load makes it noisy.`,
    );
    if (half) ctx.note(`${half}: max |Δloss| vs f32 ${maxF16 ?? "—"} (f16 rounding).`);
  },
});
