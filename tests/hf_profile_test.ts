/**
 * The Hugging Face profile (`plan --framework hf`): PyTorch's caching allocator rules, the
 * extra buffers and their sources, and the paper's Llama3-8B figures as the claims ledger states
 * them (meta device only).
 */

import assert from "node:assert/strict";
import { MetaDevice } from "../lib/device/meta.ts";
import { POLICIES } from "../lib/techniques/policy.ts";
import { getPreset } from "../lib/config/presets.ts";
import {
  allocationSize,
  CachingAllocatorModel,
  LARGE_BUFFER,
  roundSize,
  SMALL_BUFFER,
} from "../lib/profiles/hf/caching_allocator.ts";
import { HF_EXTRAS } from "../lib/profiles/hf/extras.ts";
import { parseFramework } from "../lib/profiles/registry.ts";
import { planStep } from "../lib/plan/planner.ts";
import { runLedger } from "../lib/claims/ledger.ts";
import { runSteps } from "../lib/train/run_steps.ts";

const MiB = 2 ** 20;
const GiB = 2 ** 30;

Deno.test("caching allocator: 512-byte rounding and the 2 MiB / 20 MiB / 2 MiB-rounded segments", () => {
  assert.equal(roundSize(1), 512);
  assert.equal(roundSize(512), 512);
  assert.equal(roundSize(513), 1024);
  assert.equal(allocationSize(MiB), SMALL_BUFFER); // small pool: 2 MiB segments
  assert.equal(allocationSize(MiB + 512), LARGE_BUFFER); // 1–10 MiB: a 20 MiB segment
  assert.equal(allocationSize(10 * MiB), 10 * MiB); // from 10 MiB: its own size …
  assert.equal(allocationSize(11 * MiB + 512), 12 * MiB); // … rounded up to 2 MiB
  const cuda = new CachingAllocatorModel(Infinity);
  assert.equal(cuda.malloc(1, 100), 512);
  assert.equal(cuda.malloc(2, 700 * 1024), 700 * 1024); // same 2 MiB small segment, split
  assert.equal(cuda.stats().reservedBytes, SMALL_BUFFER);
  // 3 MiB from a new 20 MiB segment, split (17 MiB left > 1 MiB)
  assert.equal(cuda.malloc(3, 3 * MiB), 3 * MiB);
  // 16.5 MiB left: 16 MiB + 512 B fits; the 0.5 MiB left is not split off (≤ 1 MiB), so
  // the whole 17 MiB block counts as allocated
  assert.equal(cuda.malloc(4, 16 * MiB + 512), 17 * MiB);
  assert.equal(cuda.stats().reservedBytes, SMALL_BUFFER + LARGE_BUFFER);
  assert.equal(cuda.stats().allocatedBytes, 512 + 700 * 1024 + 20 * MiB);
  assert.ok(cuda.consistent());
});

Deno.test("caching allocator: frees merge, best fit reuses, cached segments go before an OOM", () => {
  const cuda = new CachingAllocatorModel(64 * MiB);
  cuda.malloc(1, 12 * MiB); // segment A, 12 MiB
  cuda.malloc(2, 30 * MiB); // segment B, 30 MiB
  cuda.free(1);
  cuda.free(2);
  // 12 MiB fits A exactly (best fit), not B
  assert.equal(cuda.malloc(3, 12 * MiB), 12 * MiB);
  assert.equal(cuda.stats().segmentsAllocated, 2);
  // 40 MiB: no free block fits and 42 + 40 > 64, so free segment B is released first
  assert.equal(cuda.malloc(4, 40 * MiB), 40 * MiB);
  assert.equal(cuda.stats().reservedBytes, 52 * MiB);
  assert.equal(cuda.stats().allocRetries, 1);
  // nothing left to release: PyTorch's out-of-memory
  assert.equal(cuda.malloc(5, 14 * MiB), null);
  // a split block merges back with its free neighbour
  cuda.free(4);
  cuda.malloc(6, 10 * MiB); // 40 MiB block split: 10 + 30 free
  cuda.free(6);
  assert.equal(cuda.malloc(7, 40 * MiB), 40 * MiB, "the two halves merged into 40 MiB again");
  assert.equal(cuda.stats().segmentsAllocated, 3);
  assert.ok(cuda.consistent());
});

Deno.test("frameworks: an unknown name lists the allowed ones", () => {
  assert.equal(parseFramework("hf"), "hf");
  assert.throws(() => parseFramework("jax"), /unknown framework "jax"; frameworks are ours, hf/);
});

Deno.test("the HF profile frees every extra buffer and names each with its source", async () => {
  const cfg = getPreset("llama3-tiny");
  const ids = Int32Array.from({ length: 96 }, (_, i) => (i * 31) % cfg.vocabSize);
  for (
    const policy of [
      POLICIES.hfStandard,
      POLICIES.hfCheckpoint,
      { ...POLICIES.mstOib, framework: "hf" as const },
      { framework: "hf" as const, mst: { mlp: 3, head: 5 } },
    ]
  ) {
    // runSteps throws on any leaked tensor
    await runSteps(new MetaDevice({ floats: "bf16" }), cfg, policy, { ids, targets: ids }, {
      steps: 2,
      onWarning: () => {},
    });
  }
  const plan = await planStep({
    cfg,
    policy: { ...POLICIES.mst, framework: "hf" },
    seq: 256,
    dtype: "bf16",
    budget: Infinity,
  });
  assert.equal(plan.framework, "hf");
  const kinds = plan.hf!.extras.map((e) => e.kind);
  for (const k of ["rmsnorm_upcast", "mlp_act", "fa2_backward", "mst_head_fp32", "adamw_foreach"]) {
    assert.ok(kinds.includes(k), `${k} in ${kinds}`);
  }
  for (const e of plan.hf!.extras) {
    assert.equal(e.source, HF_EXTRAS[e.kind as keyof typeof HF_EXTRAS].source);
  }
  assert.ok(plan.hf!.allocatedPeakBytes >= plan.peakBytes, "blocks are rounded up");
  assert.ok(plan.hf!.reservedPeakBytes >= plan.hf!.allocatedPeakBytes);
  // in an f32 plan `.to(torch.float32)` is a no-op: no upcast beyond our own tensors
  const f32 = await planStep({
    cfg,
    policy: POLICIES.hfStandard,
    seq: 256,
    dtype: "f32",
    budget: Infinity,
  });
  assert.ok(!f32.hf!.extras.some((e) => e.kind === "rmsnorm_upcast" && e.maxBytes > 0));
  const ours = await planStep({ cfg, policy: {}, seq: 256, dtype: "bf16", budget: Infinity });
  assert.equal(ours.framework, "ours");
  assert.equal(ours.hf, undefined);
  assert.ok(f32.peakBytes > ours.peakBytes);
});

Deno.test("the HF profile's Llama3-8B figures are what the claims ledger says", async () => {
  // the ledger's MsT-paper entries (lib/claims/mst_paper.ts): max S of standard, recomputation
  // (+ Adam hooks, as mini-s scripts/benchmark.py) and MsT + OiB within ±20% of ≈5K / ≈15K / 60K,
  // each moving with the activations; 74.81 GB at S = 8192 is fixed memory only
  const ids = ["mst-standard-5k", "mst-recomputation-15k", "mst-60k", "mst-notebook-74.81gb"];
  const results = await runLedger({ only: ids });
  const by = Object.fromEntries(results.map((r) => [r.id, r]));
  for (const id of ids.slice(0, 3)) {
    const r = by[id];
    assert.equal(r.status, "reproduced", `${id}: ${r.oursLabel}`);
    assert.ok(Math.abs(r.ratio! - 1) <= 0.2, `${id}: ${r.ratio}`);
    assert.equal(r.limitedBy, "memory");
    assert.deepEqual(r.profiles, { maxSeq: "hf" });
  }
  const at8k = by["mst-notebook-74.81gb"];
  assert.ok(Math.abs(at8k.ours! - 74.81) <= 0.02 * 74.81, `${at8k.ours}`);
  assert.equal(at8k.status, "non-discriminating");
  assert.ok(at8k.sensitivity.fixedMemoryOnly);
  // the foreach AdamW step holds the peak: the same at 1,024 and 32,768 as at 8,192
  const cfg = getPreset("llama3-8b");
  for (const seq of [1024, 32768]) {
    const p = await planStep({
      cfg,
      policy: { ...POLICIES.mst, framework: "hf" },
      seq,
      dtype: "bf16",
      budget: 80 * GiB,
    });
    assert.equal(p.peakPhase, "optimizer");
    assert.ok(Math.abs(p.hf!.allocatedPeakBytes / GiB - at8k.ours!) < 0.01, `${seq}`);
  }
});
