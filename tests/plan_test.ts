/** Plans explain their peak: its phase, each phase's peak, the largest tag, fixed memory. */

import assert from "node:assert/strict";
import { getPreset } from "../lib/config/presets.ts";
import { POLICIES } from "../lib/techniques/policy.ts";
import { explainPlan, fixedDominates } from "../lib/plan/explain.ts";
import { planStep } from "../lib/plan/planner.ts";

Deno.test("llama3-8b at S=1024: fixed memory dominates, so MsT leaves the peak unchanged", async () => {
  const base = { cfg: getPreset("llama3-8b"), seq: 1024, dtype: "bf16" as const, budget: Infinity };
  const std = await planStep({ ...base, policy: POLICIES.standard });
  const mst = await planStep({ ...base, policy: POLICIES.mst });
  assert.equal(mst.peakBytes, std.peakBytes);
  for (const p of [std, mst]) {
    assert.equal(p.peakPhase, "backward");
    assert.ok(fixedDominates(p));
    assert.ok(p.fixedBytes > 0.99 * p.peakBytes, `${p.fixedBytes} of ${p.peakBytes}`);
    assert.equal(p.largestTag, "optimizer");
    assert.equal(Math.max(...Object.values(p.phasePeaks)), p.peakBytes);
    assert.ok(p.phasePeaks.forward < p.phasePeaks.backward);
  }
  const text = explainPlan(std).join("\n");
  assert.match(text, /^peak in backward \(phase peaks: forward .*, backward .*, optimizer .*\)/);
  assert.match(text, /fixed memory dominates: .* do not depend on S/);
  assert.match(text, /--optimizer-in-backward frees most of the gradients/);
  // MsT does shrink what is not fixed: the forward phase's peak
  assert.ok(mst.phasePeaks.forward < std.phasePeaks.forward);
  assert.equal(mst.policy, "MsT + recomputation");
});

Deno.test("llama3-tiny at S=4096: activations dominate; a plan that does not fit names its phase", async () => {
  const base = { cfg: getPreset("llama3-tiny"), seq: 4096, dtype: "f32" as const };
  const p = await planStep({ ...base, policy: {}, budget: Infinity });
  assert.ok(!fixedDominates(p));
  assert.doesNotMatch(explainPlan(p).join("\n"), /fixed memory dominates/);
  assert.deepEqual(p.chunks, { mlp: null, head: null });
  const tight = await planStep({ ...base, policy: {}, budget: p.phasePeaks.forward + 1 });
  assert.equal(tight.fits, false);
  assert.equal(tight.peakPhase, "backward");
  assert.ok(tight.peakBytes > tight.phasePeaks.forward);
  assert.equal(tight.phasePeaks.backward, tight.peakBytes);
});
