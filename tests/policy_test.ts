/** The memory policy: one name per policy everywhere, and clear errors for a bad one. */

import assert from "node:assert/strict";
import { MetaDevice } from "../lib/device/meta.ts";
import { Model } from "../lib/models/model.ts";
import { describePolicy, POLICIES, validatePolicy } from "../lib/techniques/policy.ts";
import { getPreset } from "../lib/config/presets.ts";

Deno.test("describePolicy names the named policies and their variants", () => {
  assert.deepEqual(
    Object.fromEntries(Object.entries(POLICIES).map(([k, p]) => [k, describePolicy(p)])),
    {
      standard: "standard",
      checkpoint: "recomputation",
      mst: "MsT + recomputation",
      mstOib: "MsT + recomputation + optimizer-in-backward",
      mstOffload: "MsT + recomputation + checkpoint offload",
      mstKeepAttention: "MsT + recomputation (attention kept)",
      hfStandard: "standard (HF)",
      hfCheckpoint: "recomputation (HF)",
    },
  );
  assert.equal(describePolicy({}), "standard");
  assert.equal(describePolicy({ framework: "ours", mst: { mlp: "off" } }), "standard");
  assert.equal(describePolicy({ mst: { mlp: 4 } }), "MsT(mlp=4, head=off)");
  assert.equal(
    describePolicy({ mst: { mlp: "auto", head: 8 }, checkpoint: true }),
    "MsT(mlp=auto, head=8) + recomputation",
  );
  // the HF profile covers every part, chunked ones included
  assert.equal(
    describePolicy({ framework: "hf", mst: { head: "auto" } }),
    "MsT(mlp=off, head=auto) (HF)",
  );
  assert.equal(describePolicy({ optimizerInBackward: true }), "optimizer-in-backward");
  assert.equal(describePolicy({ ...POLICIES.checkpoint, dtype: "bf16" }), "recomputation [bf16]");
});

Deno.test("named policies are frozen: one user cannot change another's", () => {
  assert.throws(() => {
    (POLICIES.mst.mst as { mlp?: unknown }).mlp = 3;
  }, TypeError);
  assert.throws(() => {
    (POLICIES.standard as { checkpoint?: boolean }).checkpoint = true;
  }, TypeError);
});

Deno.test("a malformed or unsupported policy is refused with the field and the fix", () => {
  assert.throws(
    () => validatePolicy({ checkpoints: true } as never),
    /unknown field "checkpoints"; fields are framework, mst, checkpoint/,
  );
  assert.throws(() => validatePolicy({ mst: { mlp: 0 } }), /mst.mlp must be a positive integer/);
  assert.throws(() => validatePolicy({ mst: { attn: 2 } } as never), /unknown mst part "attn"/);
  assert.throws(
    () => validatePolicy({ framework: "torch" } as never),
    /framework must be one of ours, hf, got "torch"/,
  );
  // the old head field was folded into framework
  assert.throws(() => validatePolicy({ head: "hf" } as never), /use framework: "hf"/);
  // offload moves the recomputation checkpoints: without checkpoint there are none
  assert.throws(
    () => validatePolicy({ offload: true }),
    /offload .*checkpoint \(recomputation\) is off.*checkpoint: true \(--checkpoint\).*--offload-checkpoints/,
  );
  assert.throws(() => validatePolicy({ offload: "yes" } as never), /offload must be true or false/);
  validatePolicy({ checkpoint: true, offload: true });
  validatePolicy({ checkpoint: false, offload: false });
  // dtype must match how the device counts floats
  const cfg = getPreset("llama3-tiny");
  assert.throws(
    () => Model.build(new MetaDevice(), cfg, { dtype: "bf16" }),
    /dtype bf16, but the device counts floats as f32.*floats: "bf16"/s,
  );
  const dev = new MetaDevice({ floats: "bf16" });
  const m = Model.build(dev, cfg, { dtype: "bf16" });
  assert.equal(m.policy.dtype, "bf16");
  m.dispose();
});
