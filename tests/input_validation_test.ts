/**
 * Bad input is refused where it enters, naming the field (issue 23): byte sizes without a unit,
 * GB vs GiB said back, negative values after a flag, sequence lengths that are not integers ≥ 1
 * or cannot be counted, and policy lookups by a name that does not exist.
 */

import assert from "node:assert/strict";
import { budgetNote, parseBudget, parseTaskArgs } from "../lib/cli/args.ts";
import { describeBytes, parseBytes } from "../lib/device/dtype.ts";
import { POLICIES, policyByName } from "../lib/techniques/policy.ts";
import { getPreset } from "../lib/config/presets.ts";
import { maxSequence, planStep } from "../lib/plan/planner.ts";
import { makeBatches } from "../lib/train/data_source.ts";
import { checkSeq, MAX_SEQ } from "../lib/util/validate.ts";

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

Deno.test("a byte size needs a unit; GB and GiB are both read and said back", () => {
  assert.throws(() => parseBudget("80"), /--budget: "80" has no unit: write 80GiB .* or 80GB/);
  assert.throws(() => parseBytes("-5GB"), /cannot be negative/);
  assert.throws(() => parseBytes("80 GX"), /unknown unit "GX"/);
  assert.equal(parseBytes("80GB"), 80e9);
  assert.equal(parseBytes("80 GiB"), 80 * 2 ** 30);
  assert.equal(parseBytes("512b"), 512);
  assert.equal(describeBytes("80GB"), "80 GB = 74.51 GiB (80000000000 bytes)");
  assert.equal(describeBytes("80gib"), "80 GiB = 85.9 GB (85899345920 bytes)");
  assert.equal(budgetNote("80GB"), "budget: 80 GB = 74.51 GiB (80000000000 bytes)");
  assert.equal(budgetNote(undefined), null);
});

Deno.test("a negative value after a flag is named, not 'ambiguous'", () => {
  const opts = { seq: { type: "string" }, json: { type: "boolean" } } as const;
  assert.throws(
    () => parseTaskArgs(["llama3-tiny", "--seq", "-4096"], opts, "usage"),
    /--seq -4096: a negative value is not accepted here .*--seq 4096/,
  );
  // a flag followed by another flag is still parsed as before
  const { values } = parseTaskArgs(["--json", "--seq", "8"], opts, "usage");
  assert.equal(values.seq, "8");
});

Deno.test("planStep, maxSequence, makeBatches check S at the boundary and name the field", async () => {
  const cfg = getPreset("llama3-tiny");
  const plan = (seq: number) =>
    planStep({ cfg, policy: POLICIES.mst, seq, dtype: "f32", budget: Infinity });
  for (
    const [seq, why] of [
      [0, /below 1/],
      [-5, /got -5 \(below 1\)/],
      [NaN, /got NaN \(NaN\)/],
      [1.5, /got 1\.5 \(not an integer\)/],
      [1e12, /above 2147483647: token positions are int32/],
      [Infinity, /not finite/],
    ] as const
  ) {
    await assert.rejects(plan(seq), (e: Error) => {
      assert.match(e.message, /^planStep: seq must be an integer from 1 to 2147483647, got /);
      assert.match(e.message, why);
      return true;
    });
  }
  await assert.rejects(
    planStep({ cfg, policy: POLICIES.mst, seq: 64, dtype: "f32", budget: NaN }),
    /planStep: budget must be a number of bytes ≥ 0/,
  );
  await assert.rejects(
    maxSequence({ cfg, policy: POLICIES.mst, dtype: "f32", budget: 2 ** 30 }, { start: 0.5 }),
    /maxSequence: start must be an integer/,
  );
  await assert.rejects(makeBatches("repeat", cfg, -1, 1), /makeBatches: S must be an integer/);
  await assert.rejects(makeBatches("repeat", cfg, 8, 0.5), /makeBatches: seed must be/);
  assert.equal(checkSeq("x", MAX_SEQ), MAX_SEQ);
  // a good S still plans
  assert.ok((await plan(64)).peakBytes > 0);
});

Deno.test("a policy looked up by a name it does not have fails with the list of names", () => {
  const names = /the names are standard, checkpoint, mst, mstOib, .*hfCheckpoint/;
  assert.throws(() => (POLICIES as Record<string, unknown>)["mts"], names);
  assert.throws(() => policyByName("mts"), names);
  assert.equal(policyByName("mst"), POLICIES.mst);
  // the object itself still behaves as a plain frozen record
  assert.ok(Object.isFrozen(POLICIES));
  assert.ok("mst" in POLICIES && !("mts" in POLICIES));
  assert.deepEqual(JSON.parse(JSON.stringify(POLICIES)).checkpoint, { checkpoint: true });
  assert.equal(Object.keys(POLICIES).length, 8);
});

Deno.test("deno task plan: --budget 80 is refused with a hint, 80GB is said back, -4096 named", async () => {
  const [bare, gb, neg, none] = await Promise.all([
    task(["tasks/plan.ts", "llama3-8b", "--max-seq", "--budget", "80"]),
    task(["tasks/plan.ts", "llama3-tiny", "--seq", "256", "--budget", "80GB"]),
    task(["tasks/plan.ts", "llama3-tiny", "--seq", "-4096"]),
    task(["tasks/plan.ts", "llama3-tiny", "--max-seq", "--budget", "80B"]),
  ]);
  assert.equal(bare.code, 1);
  assert.match(bare.stderr, /--budget: "80" has no unit: write 80GiB/);
  assert.equal(gb.code, 0, gb.stderr);
  assert.match(gb.stdout, /^budget: 80 GB = 74\.51 GiB/m);
  assert.equal(neg.code, 1);
  assert.match(neg.stderr, /--seq -4096: a negative value is not accepted/);
  assert.doesNotMatch(neg.stderr, /ambiguous/);
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /nothing fits: even S = 1 needs more than 80 B/);
});
