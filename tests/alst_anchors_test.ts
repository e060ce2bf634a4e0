/**
 * ALST's three Llama-8B figures as the claims ledger states them (lib/claims/alst.ts), and the
 * README's 8-GPU command: a plan never says "within" the budget while the device must hold more.
 *
 * - 1×H100: limited by the modelled int32 binding (2^31 elements of one (S, d) tensor; the
 *   recipe's "555000 # Triton Error" shows it); so it does not measure memory: non-discriminating.
 *   Memory alone reaches further.
 * - 8× and 32×H100: no source shows an int32 limit, so they are planned from memory alone
 *   (our runtime's ranks, the device's reserve judged) and differ from ALST's figures, with the
 *   term that explains it. Meta device only.
 */

import assert from "node:assert/strict";
import { runLedger } from "../lib/claims/ledger.ts";

Deno.test("ALST in the ledger: 1 GPU stopped by the cited int32 binding, 8 and 32 GPUs by memory", async () => {
  const results = await runLedger({ only: ["alst-1gpu", "alst-8gpu", "alst-32gpu"] });
  const [one, eight, many] = results;
  assert.equal(one.limitedBy, "binding");
  assert.equal(one.ours, 2 ** 31 / 4096);
  assert.equal(one.status, "non-discriminating");
  assert.match(one.notes.join(" "), /memory alone gives [\d,]+/);
  for (const r of [eight, many]) {
    assert.notEqual(r.limitedBy, "binding", r.id);
    assert.ok(r.limitedBy === "memory" || r.limitedBy === "reserve", `${r.id}: ${r.limitedBy}`);
    assert.ok(Math.abs(r.sensitivity.activations10!) >= 1e-3, `${r.id} moves with activations`);
    assert.equal(r.status, "differs", `${r.id}: ${r.oursLabel} vs ${r.publishedLabel}`);
    assert.match(r.explains!, /profile/);
    assert.deepEqual(r.profiles, { maxSeq: "ours" });
  }
});

Deno.test("plan: the README's ALST 8-GPU command never says within the budget while the reserve exceeds it", async () => {
  const args = [
    "run",
    "-A",
    "tasks/plan.ts",
    "llama3-8b",
    "--dtype",
    "bf16",
    "--budget",
    "80GiB",
    "--max-seq",
    "--policy",
    "mst",
    "--offload-checkpoints",
    "--gpus",
    "8",
    "--zero",
    "3",
    "--sp",
    "8",
    "--offload-optimizer",
  ];
  const out = await new Deno.Command(Deno.execPath(), { args: [...args, "--json"] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const j = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.ok(j.maxSeq > 0);
  assert.ok(j.deviceBytes <= j.budgetBytes, `device holds ${j.deviceBytes} > ${j.budgetBytes}`);
  assert.ok(j.reservedBytes + j.overheadBytes <= j.budgetBytes);
  // one host figure, its parts named
  assert.equal(j.host.totalBytes, j.host.checkpointsBytes + j.host.partitionsBytes);
  assert.ok(j.host.checkpointsBytes > 0 && j.host.partitionsBytes > 0);
  // the next S up does not fit
  const next = await new Deno.Command(Deno.execPath(), {
    args: [
      ...args.filter((a) => a !== "--max-seq"),
      "--seq",
      String(j.maxSeq + 8 * 1024),
      "--json",
    ],
  }).output();
  const n = JSON.parse(new TextDecoder().decode(next.stdout));
  assert.equal(n.fits, false);
});

Deno.test("plan --gpu a100-80g: budget = the GPU's memory, no lavapipe overhead", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "tasks/plan.ts",
      "llama3-8b",
      "--gpu",
      "a100-80g",
      "--dtype",
      "bf16",
      "--seq",
      "4096",
    ],
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.doesNotMatch(text, /lavapipe/);
  assert.match(text, /in 80\.00 GiB/);
  assert.match(text, /no driver or CUDA context overhead counted/);
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tasks/plan.ts", "llama3-8b", "--gpu", "b300", "--seq", "4096"],
  }).output();
  assert.equal(bad.code, 1);
  assert.match(new TextDecoder().decode(bad.stderr), /unknown GPU "b300"; known GPUs are a100-40g/);
});
