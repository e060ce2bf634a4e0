/**
 * The claims ledger (`deno task claims`, lib/claims/): every entry computes, carries its source,
 * setup, tolerance and sensitivity; ratio entries count both terms under one profile; and the
 * generated blocks of README.md and docs/architecture.md are what the code computes (the drift
 * test). Meta device only.
 */

import assert from "node:assert/strict";
import {
  ALL_CLAIMS,
  blocksMatch,
  docsBlock,
  replaceBlocks,
  runLedger,
} from "../lib/claims/ledger.ts";
import type { ClaimResult } from "../lib/claims/types.ts";
import { sameProfileRatio } from "../lib/claims/like_for_like.ts";
import { MST_PAPER_POLICIES, termLabel } from "../lib/claims/mst_paper.ts";
import { POLICIES } from "../lib/techniques/policy.ts";

let cached: Promise<ClaimResult[]> | null = null;
const ledger = () => cached ??= runLedger();

Deno.test("claims: at least 12 entries, each with source, setup, tolerance, status and sensitivity", async () => {
  const results = await ledger();
  assert.ok(results.length >= 12, `${results.length} entries`);
  assert.equal(results.length, ALL_CLAIMS.length);
  const statuses = ["reproduced", "differs", "non-discriminating", "not modelled"];
  for (const r of results) {
    assert.ok(r.source && r.location, r.id);
    assert.ok(r.setup.preset && r.setup.gpu && r.setup.dtype && r.setup.policy, r.id);
    assert.ok(r.tolerance.reason.length > 0, r.id);
    assert.ok(statuses.includes(r.status), `${r.id}: ${r.status}`);
    assert.equal(r.status === "differs", r.explains !== null, r.id);
    assert.ok("sDoubled" in r.sensitivity && "activations10" in r.sensitivity, r.id);
    // an entry that moves with neither S nor the activations cannot validate the activation model
    if (r.sensitivity.fixedMemoryOnly) assert.equal(r.status, "non-discriminating", r.id);
    if (r.status === "reproduced") {
      assert.ok(Math.abs(r.sensitivity.activations10!) >= 1e-3, r.id);
    }
  }
  const ids = results.map((r) => r.id);
  for (
    const id of [
      "mst-standard-5k",
      "mst-recomputation-15k",
      "mst-60k",
      "mst-ratio-12x",
      "mst-ratio-4x",
      "mst-notebook-74.81gb",
      "mst-appendix-67-48gb",
      "mst-llama2-84k",
      "mst-families-12-24x",
      "mst-throughput",
      "mst-convergence",
      "alst-1gpu",
      "alst-8gpu",
      "alst-32gpu",
      "unsloth-8b-hf",
      "unsloth-8b-cce",
      "unsloth-70b-80-hf",
      "unsloth-70b-80-unsloth",
      "unsloth-70b-80-cce",
      "unsloth-70b-48-hf",
      "unsloth-70b-48-unsloth",
      "unsloth-70b-48-cce",
    ]
  ) assert.ok(ids.includes(id), id);
  const at8k = results.find((r) => r.id === "mst-notebook-74.81gb")!;
  assert.match(at8k.claim, /fixed memory/);
  assert.equal(at8k.status, "non-discriminating");
});

Deno.test("claims: Unsloth's QLoRA table, each cell with its profile, both sides' buffers, and the HF 8B cell within ±25%", async () => {
  const results = (await ledger()).filter((r) => r.id.startsWith("unsloth-"));
  assert.equal(results.length, 8);
  for (const r of results) {
    assert.match(r.setup.policy, /^QLoRA r=32/, r.id);
    const hf = r.id.endsWith("-hf");
    assert.equal(r.profiles.maxSeq, hf ? "hf" : "ours", r.id);
    // what each side holds that the other does not
    assert.ok(r.notes.some((n) => /we (hold|count)/.test(n)), r.id);
    assert.ok(r.notes.some((n) => /(they|Unsloth) holds?/.test(n)), r.id);
    if (!hf) assert.ok(r.notes.some((n) => /with the MsT MLP too/.test(n)), r.id);
  }
  const hf8b = results.find((r) => r.id === "unsloth-8b-hf")!;
  assert.equal(hf8b.status, "reproduced");
  assert.ok(Math.abs(hf8b.ratio! - 1) <= 0.25, `ratio ${hf8b.ratio}`);
});

Deno.test("claims: every ratio entry counts all its terms under one profile, the publication's", async () => {
  for (const r of await ledger()) {
    const profiles = new Set(Object.values(r.profiles));
    assert.equal(profiles.size, 1, `${r.id}: ${[...profiles]}`);
    if (r.unit === "×") {
      assert.deepEqual(Object.keys(r.profiles).sort(), ["denominator", "numerator"], r.id);
      if (r.source.startsWith("MsT")) assert.deepEqual([...profiles], ["hf"], r.id);
    }
    if (r.ourRuntime) assert.equal(r.ourRuntime.profile, "ours", r.id);
  }
});

Deno.test("claims: the generated blocks of README.md and docs/architecture.md match the ledger", async () => {
  const results = await ledger();
  for (const f of ["README.md", "docs/architecture.md"]) {
    const text = await Deno.readTextFile(f);
    const r = replaceBlocks(text, results);
    assert.ok(r.blocks.length > 0, `${f} has no generated block`);
    assert.ok(
      blocksMatch(text, results),
      `${f}: a generated block differs from what the code computes; run deno task claims --write-docs`,
    );
  }
  assert.throws(() => docsBlock("nope", results), /unknown docs block "nope"/);
  // a changed figure is caught
  const readme = await Deno.readTextFile("README.md");
  const first = results.find((r) => r.ours !== null && r.unit === "tokens")!;
  const at = readme.indexOf("<!-- claims:begin ledger");
  assert.ok(at >= 0 && readme.indexOf(first.oursLabel, at) > at);
  const changed = readme.slice(0, at) + readme.slice(at).replace(first.oursLabel, "1,234,567");
  assert.ok(!blocksMatch(changed, results));
});

Deno.test("claims --json prints one line {claims: [...]}; an unknown id is refused", async () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "-A", "tasks/claims.ts", ...args] }).output();
  const ok = await run(["--json", "--only", "mst-throughput,mst-notebook-74.81gb"]);
  assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
  const lines = new TextDecoder().decode(ok.stdout).trim().split("\n");
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]);
  assert.deepEqual(j.claims.map((c: ClaimResult) => c.id), [
    "mst-notebook-74.81gb",
    "mst-throughput",
  ]);
  for (
    const k of [
      "id",
      "source",
      "published",
      "ours",
      "status",
      "tolerance",
      "sensitivity",
      "profiles",
      "limitedBy",
    ]
  ) {
    assert.ok(k in j.claims[0], k);
  }
  const bad = await run(["--json", "--only", "nope"]);
  assert.equal(bad.code, 1);
  assert.match(new TextDecoder().decode(bad.stderr), /unknown claim id\(s\) nope/);
});

Deno.test("like for like: a ratio of two profiles is refused; one profile divides", () => {
  const hf = { policy: MST_PAPER_POLICIES.mst, value: 62912 };
  const ours = { policy: POLICIES.standard, value: 4224 };
  assert.throws(
    () => sameProfileRatio(hf, ours),
    /a ratio of a hf figure over a ours figure mixes/,
  );
  assert.equal(sameProfileRatio(hf, { policy: POLICIES.hfStandard, value: 4224 }, 1), 14.9);
  assert.equal(sameProfileRatio({ ...ours, value: null }, ours), null);
  assert.equal(termLabel(POLICIES.mst), "MsT + recomputation — ours");
  assert.equal(
    termLabel(MST_PAPER_POLICIES.mst),
    "MsT + recomputation + optimizer-in-backward (HF)",
  );
});
