/**
 * Multi-GPU plans on meta ranks: one GPU is today's plan byte for byte; ZeRO stages shard what
 * DeepSpeed shards; Ulysses SP runs S/K tokens with all-to-all buffers and attention over S for
 * H/K heads (KV heads replicated past the KV count); impossible combinations fail clearly;
 * `--max-seq` works with all of it; the DeepSpeed export validates against the documented keys.
 */

import assert from "node:assert/strict";
import { MetaDevice } from "../lib/device/meta.ts";
import { getPreset } from "../lib/config/presets.ts";
import { parameterShapes } from "../lib/config/derived.ts";
import { type MemoryPolicy, POLICIES } from "../lib/techniques/policy.ts";
import { DEEPSPEED_ZERO_DEFAULTS, validateParallel } from "../lib/sharding/parallel_plan.ts";
import { maxSequence, planStep } from "../lib/plan/planner.ts";
import { parseParallel } from "../lib/cli/parallel_options.ts";
import { runSteps } from "../lib/train/run_steps.ts";
import { deepspeedConfig, validateDeepSpeedConfig } from "../lib/plan/deepspeed_export.ts";
import { writeDeepSpeedExport } from "../lib/plan/deepspeed_write.ts";
import { ALST_SETUPS, alstPolicy } from "../lib/plan/alst.ts";

const GiB = 2 ** 30;
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

Deno.test("one GPU (ZeRO 0, SP 1, nothing offloaded) is today's single-device plan, byte for byte", async () => {
  const cases: [string, "bf16" | "f32", number, MemoryPolicy][] = [
    ["llama3-8b", "bf16", 8192, POLICIES.standard],
    ["llama3-8b", "bf16", 8192, POLICIES.checkpoint],
    ["llama3-8b", "bf16", 8192, POLICIES.mst],
    ["llama3-8b", "bf16", 8192, POLICIES.mstOib],
    ["llama3-8b", "bf16", 8192, POLICIES.mstOffload],
    ["llama3-tiny", "f32", 777, POLICIES.mst],
  ];
  for (const [name, dtype, seq, policy] of cases) {
    const base = { cfg: getPreset(name), dtype, seq, budget: 80 * GiB };
    const today = JSON.stringify(await planStep({ ...base, policy }));
    for (
      const parallel of [
        { gpus: 1 },
        { gpus: 1, zero: 0, sp: 1, offloadOptimizer: false, offloadParams: false } as const,
      ]
    ) {
      const one = JSON.stringify(await planStep({ ...base, policy: { ...policy, parallel } }));
      assert.equal(one, today, `${name} ${JSON.stringify(policy)}`);
    }
  }
  const search = { cfg: getPreset("llama3-8b"), dtype: "bf16" as const, budget: 80 * GiB };
  const a = await maxSequence({ ...search, policy: POLICIES.mst }, { granularity: 1024 });
  const b = await maxSequence({ ...search, policy: { ...POLICIES.mst, parallel: { gpus: 1 } } }, {
    granularity: 1024,
  });
  assert.equal(JSON.stringify(b), JSON.stringify(a));
});

Deno.test("ZeRO 1/2/3 shard AdamW state, then gradients, then parameters 1/N; gathers and buckets counted", async () => {
  const cfg = getPreset("llama3-8b");
  const N = 8;
  const shapes = parameterShapes(cfg).map((p) => p.shape);
  const P = shapes.reduce((a, s) => a + numel(s), 0);
  const part = shapes.reduce((a, s) => a + Math.ceil(numel(s) / N), 0);
  const big = (s: readonly number[]) =>
    numel(s) >= DEEPSPEED_ZERO_DEFAULTS.paramPersistenceThreshold;
  const plan = (zero: 0 | 1 | 2 | 3) =>
    planStep({
      cfg,
      policy: { ...POLICIES.mst, parallel: { gpus: N, zero } },
      seq: 4096,
      dtype: "bf16",
      budget: Infinity,
    });
  const [z0, z1, z2, z3] = await Promise.all([plan(0), plan(1), plan(2), plan(3)]);
  for (const p of [z0, z1, z2, z3]) assert.equal(p.rank?.tokensPerRank, 4096);
  // stage 0: every moment, full (bf16: 2 bytes); plain data parallel all-reduces in buckets
  assert.equal(z0.breakdown.optimizer, 2 * P * 2);
  assert.equal(z0.breakdown.weights, P * 2);
  // stage 1: moments are the rank's partition
  assert.equal(z1.breakdown.optimizer, 2 * part * 2);
  assert.equal(z1.breakdown.weights, P * 2);
  // stage 2: gradients too: the partition plus at most the running layer's full gradients,
  // and the reduce bucket (DeepSpeed's 5e8 elements)
  assert.equal(z2.breakdown.optimizer, 2 * part * 2);
  assert.ok(z2.breakdown.grads >= part * 2, `${z2.breakdown.grads}`);
  assert.ok(z2.breakdown.grads < z1.breakdown.grads / 2, `${z2.breakdown.grads}`);
  assert.equal(z2.breakdown.comm, DEEPSPEED_ZERO_DEFAULTS.reduceBucketSize * 2);
  // stages 0-1 all-reduce the full gradients after backward: at S=4096 that is the peak
  for (const z of [z0, z1]) {
    assert.equal(z.peakPhase, "optimizer");
    assert.equal(z.breakdown.comm, DEEPSPEED_ZERO_DEFAULTS.reduceBucketSize * 2);
  }
  // stage 3: parameters too: partitions of the big ones, the small ones (norms) whole
  const resident = shapes.filter((s) => !big(s)).reduce((a, s) => a + numel(s), 0);
  const partitions = shapes.filter(big).reduce((a, s) => a + Math.ceil(numel(s) / N), 0);
  assert.equal(z3.breakdown.weights, (resident + partitions) * 2);
  // gathered at the peak: at most one decoder layer or the embedding / LM head (prefetch 0)
  const layer = parameterShapes(cfg).filter((p) => p.name.startsWith("model.layers.0."))
    .reduce((a, p) => a + numel(p.shape), 0);
  const largest = Math.max(layer, cfg.vocabSize * cfg.hidden);
  assert.ok(z3.breakdown.gathered > 0 && z3.breakdown.gathered <= largest * 2);
  assert.equal(z3.rank?.prefetchLayers, 0);
  assert.ok(z3.peakBytes < z2.peakBytes && z2.peakBytes < z1.peakBytes);
  assert.ok(z1.peakBytes < z0.peakBytes);
  assert.match(z3.policy, /\[8 GPUs, ZeRO-3\]$/);
});

Deno.test("offloaded optimizer / parameters are host bytes, outside the device peak", async () => {
  const base = { cfg: getPreset("llama3-8b"), seq: 2048, dtype: "bf16" as const, budget: Infinity };
  const parallel = { gpus: 1, zero: 3 as const, offloadOptimizer: true, offloadParams: true };
  const p = await planStep({ ...base, policy: { ...POLICIES.mst, parallel } });
  const P = parameterShapes(base.cfg).reduce((a, s) => a + numel(s.shape), 0);
  assert.equal(p.breakdown.optimizer ?? 0, 0);
  assert.ok((p.breakdown.weights ?? 0) < 1e6, "only the norms stay on the device");
  // moments + gradient partitions + parameter partitions, all on the host
  assert.ok(p.rank!.hostBytes > 3 * P * 2 && p.rank!.hostBytes <= 4 * P * 2);
  assert.ok(p.hostPeakBytes >= p.rank!.hostBytes);
});

Deno.test("Ulysses SP: S/K tokens per rank, all-to-all buffers, attention over S for H/K heads, KV replicated past KV", async () => {
  const cfg = getPreset("llama3-8b"); // 32 heads, 8 KV heads, head dim 128
  const K = 16; // > 8 KV heads: each KV head replicated twice
  const local = 128;
  const S = local * K;
  const dev = new MetaDevice({ floats: "bf16" });
  dev.allocator.startTimeline();
  const ids = Int32Array.from({ length: local }, (_, i) => i);
  await runSteps(dev, cfg, { ...POLICIES.mst, parallel: { gpus: K, sp: K } }, {
    ids,
    targets: ids,
  }, { steps: 1 });
  const events = dev.allocator.stopTimeline().filter((e) => e.kind === "alloc");
  const bytesOf = (name: string) => {
    const e = events.find((e) => e.name === name);
    assert.ok(e, `no allocation named ${name}`);
    return e.bytes;
  };
  const a = "model.layers.0.self_attn";
  const hd = cfg.headDim;
  assert.equal(bytesOf("ids"), local * 4, "the rank's S/K tokens");
  assert.equal(bytesOf(`${a}.q_a2a`), S * (cfg.heads / K) * hd * 2); // (S, H/K·hd)
  assert.equal(bytesOf(`${a}.q_a2a.send`), local * cfg.heads * hd * 2);
  assert.equal(bytesOf(`${a}.k_a2a.replicated`), local * K * hd * 2); // (S/K, KV·2·hd)
  assert.equal(bytesOf(`${a}.k_a2a`), S * 1 * hd * 2); // one KV head per rank, all S rows
  assert.equal(bytesOf(`${a}.o_a2a`), local * cfg.heads * hd * 2); // back to (S/K, H·hd)
  assert.equal(bytesOf(`${a}.do_a2a`), S * (cfg.heads / K) * hd * 2);
  assert.equal(bytesOf(`${a}.dk_a2a`), local * K * hd * 2); // (S/K, KV·2·hd)
  assert.equal(bytesOf(`${a}.dk_a2a.sum`), local * cfg.kvHeads * hd * 2); // replicas summed
  assert.ok(events.some((e) => e.tag === "comm" && e.name.endsWith(".send")));
  // K ≤ KV: no replication
  const plan = await planStep({
    cfg,
    policy: { ...POLICIES.mst, parallel: { gpus: 8, zero: 3, sp: 4 } },
    seq: 8192,
    dtype: "bf16",
    budget: Infinity,
  });
  assert.equal(plan.rank?.tokensPerRank, 2048);
  assert.ok((plan.breakdown.comm ?? 0) > 0);
});

Deno.test("impossible combinations fail with what was wrong and how to fix it", async () => {
  const llama = getPreset("llama3-8b");
  const qwen = getPreset("qwen2-7b"); // 28 heads, 4 KV heads
  assert.throws(() => validateParallel({ gpus: 3, sp: 3 }, llama), /--sp 3 must divide .*32/);
  assert.throws(() => validateParallel({ gpus: 4, sp: 8 }), /multiple of it .*--gpus 8/);
  assert.throws(() => validateParallel({ gpus: 12, sp: 8 }), /multiple of it/);
  assert.throws(() => validateParallel({ gpus: 7, sp: 7 }, qwen), /4 KV heads must divide/);
  assert.throws(() => validateParallel({ gpus: 2, offloadOptimizer: true }), /needs ZeRO/);
  assert.throws(() => validateParallel({ gpus: 2, zero: 2, offloadParams: true }), /--zero 3/);
  assert.throws(() => validateParallel({ gpus: 0 }), /--gpus must be a positive integer/);
  assert.throws(
    () => validateParallel({ gpus: 2, zero: 4 as never }),
    /--zero must be 0, 1, 2 or 3/,
  );
  assert.throws(() => parseParallel({ zero: "x" }), /--zero must be 0, 1, 2 or 3, got "x"/);
  assert.throws(() => parseParallel({ sp: "2.5" }), /--sp: expected a positive integer/);
  assert.equal(parseParallel({}), undefined);
  const base = { cfg: llama, dtype: "bf16" as const, budget: Infinity };
  await assert.rejects(
    planStep({ ...base, seq: 1000, policy: { ...POLICIES.mst, parallel: { gpus: 16, sp: 16 } } }),
    /S = 1000 must be a multiple of the SP degree 16 .*S = 1008/,
  );
  await assert.rejects(
    planStep({ ...base, seq: 64, policy: { ...POLICIES.mstOib, parallel: { gpus: 2, zero: 1 } } }),
    /optimizer-in-backward does not combine with ZeRO/,
  );
});

Deno.test("multi-GPU plans with --framework and --dtype f16: refused naming both, or a mixed-precision rank", async () => {
  const cfg = getPreset("llama3-tiny");
  const base = { cfg, budget: Infinity, seq: 128 };
  // the HF profile is one GPU running transformers; the ranks run our layers as DeepSpeed does
  await assert.rejects(
    planStep({
      ...base,
      dtype: "bf16",
      policy: { ...POLICIES.hfCheckpoint, parallel: { gpus: 2, zero: 3 } },
    }),
    /framework "hf" \(--framework hf\).*multi-GPU plan \(--gpus\/--zero\/--sp: 2 GPUs, ZeRO-3\)/,
  );
  await assert.rejects(
    planStep({ ...base, dtype: "bf16", policy: { framework: "hf", parallel: { gpus: 2, sp: 2 } } }),
    /--framework ours with the parallel flags/,
  );
  // f16 keeps full f32 masters and checks overflow over whole gradients: not under ZeRO >= 1
  for (const zero of [1, 2, 3] as const) {
    await assert.rejects(
      planStep({ ...base, dtype: "f16", policy: { ...POLICIES.mst, parallel: { gpus: 2, zero } } }),
      new RegExp(`mixed precision \\(--dtype f16\\) with ZeRO stage ${zero} \\(--zero ${zero}\\)`),
    );
  }
  // ZeRO 0 with Ulysses SP: the rank runs S/K tokens in mixed precision; its f32 masters and
  // moments (tag optimizer) are the single device's, whole
  const one = await planStep({ ...base, dtype: "f16", policy: POLICIES.mst });
  const sp = await planStep({
    ...base,
    dtype: "f16",
    policy: { ...POLICIES.mst, parallel: { gpus: 2, sp: 2 } },
  });
  assert.ok(one.fits && sp.fits);
  assert.equal(sp.rank?.tokensPerRank, 64);
  const masters = parameterShapes(cfg).reduce((a, p) => a + numel(p.shape), 0) * 4;
  assert.equal(one.breakdown.optimizer, 3 * masters, "f32 master + two f32 moments");
  assert.equal(sp.breakdown.optimizer, one.breakdown.optimizer);
  assert.ok(sp.peakBytes < one.peakBytes, `${sp.peakBytes} vs ${one.peakBytes}`);
});

Deno.test("--max-seq with ZeRO-3, SP, optimizer and checkpoint offload: S is a multiple of K, the next S up does not fit", async () => {
  const cfg = getPreset("llama3-tiny");
  const policy: MemoryPolicy = {
    ...POLICIES.mstOffload,
    parallel: { gpus: 4, zero: 3, sp: 2, offloadOptimizer: true },
  };
  // a live-bytes budget (the allocator's): the pool and lavapipe's driver are not judged here
  const input = { cfg, policy, dtype: "f32" as const, budget: 4 * 2 ** 20, fitOn: "live" as const };
  const r = await maxSequence(input, { start: 256 });
  assert.ok(r.maxSeq > 0 && r.maxSeq % 2 === 0, `${r.maxSeq}`);
  assert.equal(r.plan?.rank?.tokensPerRank, r.maxSeq / 2);
  assert.equal(r.limitedBy, "memory");
  const next = await planStep({ ...input, seq: r.maxSeq + 2 });
  assert.equal(next.fits, false);
  // sharding and SP lengthen the sequence against one GPU under the same budget
  const one = await maxSequence({ ...input, policy: POLICIES.mstOffload }, { start: 256 });
  assert.ok(r.maxSeq > one.maxSeq, `${r.maxSeq} vs ${one.maxSeq}`);
});

Deno.test("--export deepspeed: ALST's setups give valid configs; broken ones are refused", async () => {
  const cfg = getPreset("llama3-8b");
  for (const s of ALST_SETUPS) {
    const c = deepspeedConfig({ cfg, policy: alstPolicy(s), dtype: "bf16", seq: s.reported });
    assert.deepEqual(validateDeepSpeedConfig(c, s.parallel.gpus), [], s.name);
    const z = c.zero_optimization as Record<string, unknown>;
    assert.equal(z.stage, 3);
    assert.deepEqual(z.offload_optimizer, { device: "cpu", pin_memory: true });
    assert.equal(z.offload_param !== undefined, s.parallel.gpus === 1);
    assert.equal(c.train_micro_batch_size_per_gpu, 1);
    assert.deepEqual(c.bf16, { enabled: true });
    assert.equal(c.sequence_parallel_size, s.parallel.sp === 1 ? undefined : s.parallel.sp);
    assert.equal(
      (c.activation_checkpointing as Record<string, unknown>).cpu_checkpointing,
      true,
    );
  }
  const good = deepspeedConfig({
    cfg,
    policy: alstPolicy(ALST_SETUPS[1]),
    dtype: "bf16",
    seq: 8192,
  });
  // deno-lint-ignore no-explicit-any
  const broken = (f: (c: Record<string, any>) => void) => {
    const c = structuredClone(good);
    f(c);
    return validateDeepSpeedConfig(c, 8).join("\n");
  };
  assert.match(broken((c) => c.zero_optimisation = {}), /zero_optimisation: not a documented/);
  assert.match(broken((c) => c.zero_optimization.stage = 4), /stage: 4 is above 3/);
  assert.match(
    broken((c) => c.zero_optimization.offload_optimizer.device = "gpu"),
    /device: "gpu" is not one of cpu, nvme, none/,
  );
  assert.match(
    broken((c) => {
      c.zero_optimization.stage = 2;
      c.zero_optimization.offload_param = { device: "cpu" };
    }),
    /offload_param needs stage 3/,
  );
  assert.match(broken((c) => c.train_batch_size = 8), /train_batch_size 8 ≠ .* = 1/);
  assert.match(broken((c) => delete c.train_micro_batch_size_per_gpu), /required key missing/);
  assert.match(broken((c) => c.bf16.enabled = "yes"), /bf16.enabled: expected true or false/);
  // selective recomputation has no transformers / DeepSpeed counterpart: refused, not exported
  assert.throws(
    () =>
      deepspeedConfig({
        cfg,
        policy: { ...alstPolicy(ALST_SETUPS[1]), keepAttention: true },
        dtype: "bf16",
        seq: 8192,
      }),
    /--keep-attention: the exported run recomputes whole layers.*plan without --keep-attention/,
  );

  const dir = await Deno.makeTempDir();
  try {
    const w = await writeDeepSpeedExport(`${dir}/ds.json`, {
      cfg,
      policy: alstPolicy(ALST_SETUPS[1]),
      dtype: "bf16",
      seq: 3_700_000,
      chunks: { mlp: 113, head: 32 },
    });
    assert.deepEqual(validateDeepSpeedConfig(JSON.parse(await Deno.readTextFile(w.config)), 8), []);
    const note = await Deno.readTextFile(w.note);
    assert.equal(w.note, `${dir}/ds.launch.md`);
    assert.match(note, /num_shards=113/);
    assert.match(note, /num_shards=32/);
    assert.match(note, /sequence_parallel_size: 8/);
    assert.match(note, /cannot run on the machine/);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["ds.json", "ds.launch.md"], "no temporary files left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plan CLI: --gpus/--zero/--sp/--offload-optimizer --export deepspeed, and a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "tasks/plan.ts", ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run([
      "llama3-tiny",
      "--seq",
      "512",
      "--policy",
      "mst",
      "--gpus",
      "4",
      "--zero",
      "3",
      "--sp",
      "2",
      "--offload-optimizer",
      "--json",
      "--export",
      "deepspeed",
      "--out",
      `${dir}/ds.json`,
    ]);
    assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
    const json = JSON.parse(new TextDecoder().decode(ok.stdout).trim().split("\n").pop()!);
    assert.equal(json.rank.tokensPerRank, 256);
    assert.equal(json.rank.description, "4 GPUs, ZeRO-3, SP 2, optimizer on host");
    const ds = JSON.parse(await Deno.readTextFile(`${dir}/ds.json`));
    assert.equal(ds.sequence_parallel_size, 2);
    assert.equal(ds.train_batch_size, 2);
    const bad = await run(["llama3-8b", "--seq", "4096", "--gpus", "4", "--sp", "3"]);
    assert.equal(bad.code, 1);
    assert.match(new TextDecoder().decode(bad.stderr), /plan: --sp 3 needs a GPU count/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Ulysses SP with selective recomputation: each rank keeps its head-sharded O and lse once", async () => {
  const cfg = getPreset("llama3-tiny"); // 4 heads, head dim 16, 2 layers
  const K = 2;
  const local = 64;
  const S = local * K;
  const keptAtBackward = async (policy: MemoryPolicy) => {
    const dev = new MetaDevice();
    dev.allocator.startTimeline();
    const ids = Int32Array.from({ length: local }, (_, i) => i);
    await runSteps(dev, cfg, { ...policy, parallel: { gpus: K, sp: K } }, { ids, targets: ids }, {
      steps: 1,
    });
    const events = dev.allocator.stopTimeline();
    const live = new Map<number, { tag: string; bytes: number }>();
    for (const e of events.slice(0, events.findIndex((e) => e.phase === "backward"))) {
      if (e.kind === "alloc") live.set(e.id, { tag: e.tag, bytes: e.bytes });
      else if (e.kind === "free") live.delete(e.id);
      else live.get(e.id)!.tag = e.tag;
    }
    return [...live.values()].filter((x) => x.tag === "checkpoints")
      .reduce((a, x) => a + x.bytes, 0);
  };
  const full = await keptAtBackward(POLICIES.mst);
  const selective = await keptAtBackward(POLICIES.mstKeepAttention);
  assert.equal(full, cfg.layers * local * cfg.hidden * 4); // the rank's block inputs
  // + O over all S rows for H/K heads, and its lse (H/K, S) f32, per block
  const hK = cfg.heads / K;
  assert.equal(selective - full, cfg.layers * (S * hK * cfg.headDim * 4 + hK * S * 4));
});
