/**
 * Anchors: Snowflake ALST's three Llama-8B setups (arXiv 2506.13996; ingredients from
 * ArcticTraining's recipes, see lib/plan/alst.ts) planned on meta ranks. Each planned longest S
 * must land within [0.75×, 1.5×] of ALST's 500K / 3.7M / 15M. With checkpoint offload and
 * ZeRO-3 (optimizer on the host) the per-rank device memory is not what stops these setups:
 * the (S/K, d) tensors reach 2^31 elements first, the int32 offsets of the Triton kernels ALST
 * runs (its 1-GPU recipe crashes at 555K); the test checks that too. Meta device only.
 */

import assert from "node:assert/strict";
import { parseBytes } from "../lib/device/dtype.ts";
import { getPreset } from "../lib/models/presets.ts";
import { maxSequence } from "../lib/plan/planner.ts";
import {
  ALST_BUDGET,
  ALST_PRESET,
  ALST_SETUPS,
  alstPolicy,
  TORCH_INT32_BINDING_BYTES,
} from "../lib/plan/alst.ts";

for (const setup of ALST_SETUPS) {
  Deno.test(`ALST ${setup.name}: planned longest S within [0.75×, 1.5×] of ${setup.reported}`, async () => {
    const cfg = getPreset(ALST_PRESET);
    const budget = parseBytes(ALST_BUDGET);
    const r = await maxSequence({
      cfg,
      policy: alstPolicy(setup),
      dtype: "bf16",
      budget,
      limits: { maxStorageBufferBindingSize: TORCH_INT32_BINDING_BYTES },
    });
    const ratio = r.maxSeq / setup.reported;
    assert.ok(ratio >= 0.75 && ratio <= 1.5, `${setup.name}: S=${r.maxSeq}, ${ratio.toFixed(2)}×`);
    // what stops it is the int32 limit of one (S/K, d) tensor, with memory to spare
    assert.equal(r.limitedBy, "binding");
    const perRank = r.maxSeq / (setup.parallel.sp ?? 1);
    assert.ok(perRank * cfg.hidden <= 2 ** 31 && (perRank + 1) * cfg.hidden > 2 ** 31);
    assert.ok(r.plan!.peakBytes < budget, `${r.plan!.peakBytes}`);
    assert.ok(r.plan!.hostPeakBytes > 0, "checkpoints and optimizer state on the host");
  });
}
