/**
 * `deno task exp max-seq-device`: the longest trainable S on the real device, not only on paper.
 * Per policy: bisect S_max under the budget on a meta device mirroring the device's limits; train
 * S_max on the device with that budget on its allocator (peak ≤ budget); train S_max + resolution
 * on a fresh device, which must raise OutOfMemoryError and is then destroyed (a step cut short
 * leaves its half-built tensors live: they would count against every later run's budget).
 */

import {
  barsWithReference,
  breakdownRows,
  bytes,
  defineExperiment,
  describePolicy,
  type Device,
  getPreset,
  int,
  maxSequence,
  mib,
  OutOfMemoryError,
  parseBytes,
  POLICIES,
  preset,
  ratio,
  stackedPeak,
  trainAt,
} from "../mod.ts";

const IDS = ["standard", "checkpoint", "mst", "mstOib", "mstOffload"] as const;

export default defineExperiment({
  name: "max-seq-device",
  description:
    "Longest trainable S under a memory budget: bisected on the meta device, then confirmed by " +
    "training it on the device (peak ≤ budget) and the next S up (OutOfMemoryError), per policy",
  defaults: {
    preset: preset("llama3-tiny", { doc: "model trained on the device" }),
    budget: bytes("32MiB", { doc: "budget of the device allocator's live bytes" }),
    resolution: int(64, { min: 1, doc: "search resolution: S_max + resolution must not fit" }),
    steps: int(2, { min: 1, doc: "steps trained at S_max (and tried at S_max + resolution)" }),
    seed: int(1, { min: 0, doc: "seed of the weights and the batch" }),
  },
  quick: { budget: "16MiB" },
  async run(ctx) {
    const c = ctx.config;
    const cfg = getPreset(c.preset);
    const budget = parseBytes(c.budget);
    const dev = await ctx.device();
    dev.setBudget(budget);
    ctx.log(`${cfg.name} in ${c.budget} on ${dev.kind}, resolution ${c.resolution} tokens`);
    const train = (d: Device, id: (typeof IDS)[number], seq: number) =>
      trainAt(d, cfg, POLICIES[id], seq, {
        data: "repeat",
        seed: c.seed,
        steps: c.steps,
        onWarning: (w) => ctx.log(`   warning: ${w}`),
      });

    const points = await ctx.sweep("policy", IDS, async (id) => {
      const policy = describePolicy(POLICIES[id]);
      // the meta device counts f32 like the device, has its limits and its live-bytes budget
      const search = await maxSequence(
        { cfg, policy: POLICIES[id], dtype: "f32", budget, limits: dev.limits, fitOn: "live" },
        { granularity: c.resolution, start: 256 },
      );
      const seq = search.maxSeq;
      const fit = await train(dev, id, seq);
      const fits = fit.peakBytes <= budget;
      const over = seq + c.resolution;
      const probe = await ctx.createDevice(ctx.deviceKind);
      probe.setBudget(budget);
      let oom: string | null = null; // where the next S up ran out: "phase (tag)"
      try {
        await train(probe, id, over);
      } catch (e) {
        if (!(e instanceof OutOfMemoryError)) throw e;
        oom = `${probe.allocator.phase || "other"} (${e.tag})`;
      } finally {
        probe.destroy(); // frees what the interrupted step left live
      }
      const planned = search.plan?.peakBytes ?? null;
      const host = fit.hostPeakBytes; // offloaded checkpoints
      const row = { policy, maxSeq: seq, plannedPeakBytes: planned, fits, oom, hostBytes: host };
      ctx.record({ kind: "max-seq", ...row });
      for (const r of breakdownRows(fit, { policy, seq })) ctx.record(r);
      const peak = `${mib(fit.peakBytes).toFixed(2)} MiB`;
      ctx.log(
        `   ${policy}: S_max ${seq}, peak ${peak}; S=${over}: ${oom ? `OOM in ${oom}` : "fits"}`,
      );
      return { id, policy, seq, peakBytes: fit.peakBytes, host, fits, over, oom };
    });

    const order = points.map((p) => p.policy);
    const at = (id: string) => points.find((p) => p.id === id)!;
    ctx.chart(
      "max-seq",
      barsWithReference({
        title: `${cfg.name}: longest trainable sequence in ${c.budget}, confirmed on ${dev.kind}`,
        x: "policy",
        y: "maxSeq",
        yTitle: "S_max (tokens)",
        order,
      }),
      { kind: "max-seq" },
    );
    ctx.chart(
      "peak-at-max-seq",
      stackedPeak({
        title: `${cfg.name} on ${dev.kind}: peak at each policy's S_max, by tag`,
        y: "policy",
        stack: "tag",
        x: "bytes",
        budget,
        order,
        phase: "phase",
      }),
      { kind: "breakdown" },
    );
    const confirmed = points.every((p) => p.fits && p.oom !== null);
    const maxSeqRatio = ratio(at("mst").seq, at("standard").seq);
    ctx.summary({
      preset: cfg.name,
      device: dev.kind,
      budget: c.budget,
      maxSeq: Object.fromEntries(points.map((p) => [p.id, p.seq])),
      maxSeqRatio,
      confirmed,
    });
    ctx.table({
      title: `${cfg.name}: S_max in ${c.budget} (meta bisection), then trained on ${dev.kind}`,
      columns: ["policy", "S_max", "× standard", "peak, MiB", "≤ budget", "next S", "OOM there"],
      rows: points.map((p) => [
        p.policy,
        p.seq,
        ratio(p.seq, at("standard").seq),
        mib(p.peakBytes, 3) + (p.host ? ` (+ ${mib(p.host, 3)} on host)` : ""),
        p.fits ? "yes" : "NO",
        p.over,
        p.oom ? `yes, in ${p.oom}` : "NO",
      ]),
    });
    ctx.note(
      `The meta device has the ${dev.kind} device's limits and counts f32; the budget caps the ` +
        `allocator's live bytes on both. confirmed: every policy trained ${c.steps} steps at ` +
        `S_max within ${c.budget} and hit OutOfMemoryError at S_max + ${c.resolution}. The ` +
        `default budget is small: in 256 MiB MsT's S_max is ≈78K tokens, whose O(S²) attention ` +
        `takes far longer than a 15-minute run on a software adapter (--set budget=256MiB runs ` +
        `it).`,
    );
  },
});
