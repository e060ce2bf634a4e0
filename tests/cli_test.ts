/** The command-line tasks: flags, errors, and the JSON contracts of plan and train. */

import assert from "node:assert/strict";
import { normalizeArgv, parseChunks } from "../lib/cli/args.ts";
import { parsePolicy } from "../lib/cli/model_options.ts";
import { POLICIES } from "../lib/techniques/policy.ts";
import { parseBytes } from "../lib/device/dtype.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import { MIN_AUTO_ROWS, resolveChunks } from "../lib/mst/chunking.ts";
import { parameterCount } from "../lib/config/derived.ts";
import { getPreset } from "../lib/config/presets.ts";

async function task(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `maxSeq` of llama3-8b in 80 GiB (bf16) from `deno task plan --max-seq --json` with `flags`. */
async function maxSeq8b(...flags: string[]): Promise<number> {
  const args = ["llama3-8b", "--dtype", "bf16", "--budget", "80GiB", "--max-seq", "--json"];
  const r = await task(["tasks/plan.ts", ...args, ...flags]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!).maxSeq as number;
}

Deno.test("--mst takes an optional value", () => {
  assert.deepEqual(normalizeArgv(["x", "--mst", "--checkpoint"]), [
    "x",
    "--mst",
    "auto",
    "--checkpoint",
  ]);
  assert.deepEqual(normalizeArgv(["--mst"]), ["--mst", "auto"]);
  assert.deepEqual(normalizeArgv(["--mst", "4"]), ["--mst", "4"]);
  assert.deepEqual(parsePolicy({ mst: "auto", "mst-head": "8" }), {
    mst: { mlp: "auto", head: 8 },
  });
  assert.throws(() => parseChunks("--mst", "0"), /positive integer/);
  assert.throws(() => parseChunks("--mst", "many"), /"auto" or a positive integer/);
});

Deno.test("byte counts parse with units and reject garbage", () => {
  assert.equal(parseBytes("80GiB"), 80 * 2 ** 30);
  assert.equal(parseBytes("1.5 MB"), 1.5e6);
  assert.equal(parseBytes("4096B"), 4096);
  assert.throws(() => parseBytes("4096"), /"4096" has no unit: write 4096GiB/);
  assert.throws(() => parseBytes("lots"), /cannot read "lots" as a byte size/);
});

Deno.test("auto chunks: the shape rule, at least 256 rows, smaller only when memory demands", () => {
  const dev = new MetaDevice();
  const auto = (S: number, shapeRule: number) =>
    resolveChunks(dev, "auto", { S, shapeRule, widestRow: 1000, bytesPerRow: 4000 });
  assert.equal(auto(60000, 32), 32); // full scale: ⌈V/d⌉
  assert.equal(auto(1024, 32), 1024 / MIN_AUTO_ROWS); // tiny model: 256-row chunks
  assert.equal(auto(100, 32), 1);
  const small = new MetaDevice({ limits: { maxStorageBufferBindingSize: 400_000 } });
  // 100 rows of 1000 f32 fit one binding: S=1000 needs 10 chunks.
  assert.equal(
    resolveChunks(small, "auto", { S: 1000, shapeRule: 1, widestRow: 1000, bytesPerRow: 4000 }),
    10,
  );
  const tight = new MetaDevice();
  tight.setBudget(4000 * 4 * 50); // a quarter of the budget holds 50 rows
  assert.equal(
    resolveChunks(tight, "auto", { S: 1000, shapeRule: 1, widestRow: 1000, bytesPerRow: 4000 }),
    20,
  );
});

Deno.test("plan --json: weights are 2 bytes per parameter in bf16, tags sum to the peak", async () => {
  const r = await task([
    "tasks/plan.ts",
    "llama3-8b",
    "--seq",
    "4096",
    "--dtype",
    "bf16",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.equal(plan.parameters, parameterCount(getPreset("llama3-8b")));
  assert.equal(plan.breakdown.weights, 2 * plan.parameters);
  assert.equal(plan.weightsBytes, 2 * plan.parameters);
  const sum = Object.values(plan.breakdown as Record<string, number>).reduce((a, b) => a + b, 0);
  assert.equal(sum, plan.peakBytes);
  assert.ok(["forward", "backward", "optimizer"].includes(plan.peakPhase), plan.peakPhase);
  assert.equal(plan.phasePeaks[plan.peakPhase], plan.peakBytes);
  assert.equal(plan.policy, "standard");
  assert.equal(typeof plan.fixedDominates, "boolean");
});

Deno.test("plan --max-seq: MsT + recomputation fits far longer sequences than the standard step", async () => {
  const std = await maxSeq8b();
  const mst = await maxSeq8b("--mst", "auto", "--checkpoint", "--optimizer-in-backward");
  assert.ok(std > 1000 && std < 20000, `standard ${std}`);
  assert.ok(mst >= 12 * std, `MsT ${mst} vs standard ${std}`);
});

Deno.test("bad input gets a clear error and exit code 1", async () => {
  const unknown = await task(["tasks/train.ts", "llama9-tiny", "--device", "meta"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /llama3-tiny/); // the error lists the presets
  const badKey = await task(["tasks/plan.ts", "llama3-8b", "--seq", "64", "--set", "hiden=5"]);
  assert.equal(badKey.code, 1);
  assert.match(badKey.stderr, /hiden/);
  const noSeq = await task(["tasks/plan.ts", "llama3-8b"]);
  assert.equal(noSeq.code, 1);
  assert.match(noSeq.stderr, /--seq is required/);
  const tooBig = await task(["tasks/train.ts", "llama3-8b", "--steps", "1"]);
  assert.equal(tooBig.code, 1);
  assert.match(tooBig.stderr, /does not fit this webgpu device: .*deno task plan/s);
  const badFlag = await task(["tasks/train.ts", "llama3-tiny", "--stepz", "3"]);
  assert.equal(badFlag.code, 1);
  assert.match(badFlag.stderr, /stepz/);
});

Deno.test("train --device meta --json reports the contract fields", async () => {
  const r = await task([
    "tasks/train.ts",
    "llama3-tiny",
    "--device",
    "meta",
    "--steps",
    "2",
    "--seq",
    "64",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  for (const k of ["preset", "seq", "steps", "losses", "tokensPerSec", "peakBytes", "breakdown"]) {
    assert.ok(k in j, `missing ${k}`);
  }
  assert.equal(j.seq, 64);
  assert.deepEqual(j.losses, [null, null]);
  assert.equal(j.tokensPerSec, null, "no tokens/s on the meta device");
  assert.equal(j.timing, null);
  assert.ok(["forward", "backward", "optimizer"].includes(j.peakPhase), j.peakPhase);
});

Deno.test("train: an M above S is run as S chunks, warned about and recorded", async () => {
  const r = await task([
    "tasks/train.ts",
    "llama3-tiny",
    "--device",
    "meta",
    "--steps",
    "1",
    "--seq",
    "32",
    "--mst-head",
    "100",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: mst\.head: M=100 is more than S=32 rows/);
  const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(j.chunks, { mlp: null, head: 32 });
  assert.equal(j.policy, "MsT(mlp=off, head=100)");
  assert.equal(j.warnings.length, 1);
});

Deno.test("plan --framework: the JSON names the framework and the extra buffers", async () => {
  const plan = async (...flags: string[]) => {
    const r = await task(["tasks/plan.ts", "llama3-tiny", "--seq", "64", "--json", ...flags]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  };
  const hf = await plan("--framework", "hf", "--dtype", "bf16");
  assert.equal(hf.framework, "hf");
  assert.equal(hf.policy, "standard (HF)");
  assert.ok(hf.hf.allocatedPeakBytes >= hf.peakBytes);
  const kinds = hf.hf.extras.map((e: { kind: string }) => e.kind);
  assert.ok(kinds.includes("rmsnorm_upcast") && kinds.includes("logits"), kinds.join(","));
  assert.match(hf.hf.extras[0].source, /\w+/);
  const old = await plan("--hf-head", "--dtype", "bf16");
  assert.equal(old.peakBytes, hf.peakBytes, "--hf-head is --framework hf");
  const ours = await plan("--framework", "ours");
  assert.equal(ours.framework, "ours");
  assert.equal(ours.hf, undefined);
  const bad = await task(["tasks/plan.ts", "llama3-tiny", "--seq", "64", "--framework", "jax"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown framework "jax"; frameworks are ours, hf/);
});

Deno.test("policy flags: one parser from flags to a MemoryPolicy", () => {
  assert.deepEqual(parsePolicy({}), {});
  assert.deepEqual(parsePolicy({ policy: "mstOib" }), POLICIES.mstOib);
  assert.deepEqual(parsePolicy({ policy: "mst", "mst-head": "off" }), {
    checkpoint: true,
    mst: { mlp: "auto", head: "off" },
  });
  assert.deepEqual(parsePolicy({ checkpoint: true, framework: "hf" }), POLICIES.hfCheckpoint);
  // --hf-head is the old name of --framework hf
  assert.deepEqual(parsePolicy({ checkpoint: true, "hf-head": true }), POLICIES.hfCheckpoint);
  assert.throws(
    () => parsePolicy({ framework: "torch" }),
    /--framework: unknown framework "torch"; frameworks are ours, hf/,
  );
  assert.throws(() => parsePolicy({ framework: "ours", "hf-head": true }), /contradicts/);
  assert.deepEqual(parsePolicy({ "mst-mlp": "4", "optimizer-in-backward": true }), {
    mst: { mlp: 4 },
    optimizerInBackward: true,
  });
  assert.deepEqual(parsePolicy({ policy: "mst", "keep-attention": true }), {
    ...POLICIES.mst,
    keepAttention: true,
  });
  assert.throws(
    () => parsePolicy({ "keep-attention": true }),
    /--keep-attention .*recomputation is off; add --checkpoint \(or --policy mst\)/,
  );
  assert.throws(
    () => parsePolicy({ policy: "fast" }),
    /unknown policy "fast".*standard, checkpoint/,
  );
  assert.throws(() => parsePolicy({ "mst-mlp": "0" }), /--mst-mlp: expected "auto", "off" or/);
  assert.deepEqual(
    parsePolicy({ policy: "mst", "offload-checkpoints": true }),
    POLICIES.mstOffload,
  );
  assert.deepEqual(parsePolicy({ checkpoint: true, "offload-checkpoints": true }), {
    checkpoint: true,
    offload: true,
  });
  assert.throws(
    () => parsePolicy({ mst: "auto", "offload-checkpoints": true }),
    /--offload-checkpoints .*recomputation is off; add --checkpoint/,
  );
});

Deno.test("--offload-checkpoints: plan and train report the host bytes apart from the device peak", async () => {
  const cfg = getPreset("llama3-tiny");
  const S = 512;
  const plan = async (...flags: string[]) => {
    const args = ["llama3-tiny", "--seq", String(S), "--mst", "--checkpoint", "--json", ...flags];
    const r = await task(["tasks/plan.ts", ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  };
  const kept = await plan();
  const off = await plan("--offload-checkpoints");
  assert.equal(off.policy, "MsT + recomputation + checkpoint offload");
  assert.equal(kept.hostPeakBytes, 0);
  assert.equal(off.hostPeakBytes, cfg.layers * S * cfg.hidden * 4);
  assert.ok(off.peakBytes < kept.peakBytes, `${off.peakBytes} vs ${kept.peakBytes}`);
  assert.equal(off.breakdown.host, undefined);
  // the train task on the meta device gives the same figures
  const t = await task([
    "tasks/train.ts",
    ...["llama3-tiny", "--seq", String(S), "--steps", "2", "--device", "meta", "--json"],
    ...["--mst", "--checkpoint", "--offload-checkpoints"],
  ]);
  assert.equal(t.code, 0, t.stderr);
  const train = JSON.parse(t.stdout.trim().split("\n").at(-1)!);
  assert.equal(train.peakBytes, off.peakBytes);
  assert.equal(train.hostPeakBytes, off.hostPeakBytes);
  // without recomputation there is nothing to offload: a clear error
  const bad = await task(["tasks/plan.ts", "llama3-tiny", "--seq", "64", "--offload-checkpoints"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--offload-checkpoints .*add --checkpoint/);
});
