/**
 * Mixed precision and float counting. On an f16 device every parameter gets an f32 master
 * copy (tag `optimizer`) beside the f16 working copy the layers use, AdamW updates the master
 * and rounds it back, and the trainer scales the loss dynamically (`lib/optim/loss_scaler.ts`).
 * Policy field `dtype` (`f32`, `f16` or `bf16`) pins how floats are counted: the device must
 * count them that way, so a plan and a run cannot silently disagree. Its flag, `--dtype`, is a
 * device setting the tasks read (the meta device counts bf16; WebGPU runs f32 or f16).
 */

import type { FloatCounting } from "../device/dtype.ts";
import type { Technique } from "./technique.ts";

const FLOAT_COUNTINGS: readonly FloatCounting[] = ["f32", "f16", "bf16"];

/** f16 training with f32 master weights; the policy's float counting. */
export const MIXED_PRECISION: Technique = {
  name: "mixed precision",
  about: "f16 working weights and activations with f32 master weights and loss scaling",
  fields: ["dtype"],
  enabled: (policy, floats) => policy.dtype !== undefined || floats === "f16",
  validate(policy, floats) {
    if (policy.dtype !== undefined && !FLOAT_COUNTINGS.includes(policy.dtype)) {
      throw new Error(
        `memory policy: dtype must be one of ${FLOAT_COUNTINGS.join(", ")}, got ${
          JSON.stringify(policy.dtype)
        }`,
      );
    }
    const f16 = policy.dtype === "f16" || floats === "f16";
    if (f16 && policy.framework === "hf") {
      throw new Error(
        `memory policy: framework "hf" (what transformers + PyTorch allocate in bf16 training) ` +
          `is a planning profile and does not run in mixed precision (f16); use framework ` +
          `"ours" or --dtype bf16 on the meta device`,
      );
    }
  },
  describe(policy, name) {
    if (policy.dtype) name.tags.push(policy.dtype);
  },
  build: {
    configure(m) {
      m.settings.masterWeights = m.dev.floatType === "f16";
    },
  },
  deepspeed(_policy, draft) {
    if (draft.dtype === "bf16") draft.config.bf16 = { enabled: true };
    if (draft.dtype === "f16") draft.config.fp16 = { enabled: true };
    return undefined;
  },
};

/**
 * Throws when the policy pins a float counting the device does not use (checked last, after
 * every technique's own checks).
 */
export function checkDeviceFloats(
  policy: { dtype?: string },
  floats: string | undefined,
): void {
  if (policy.dtype !== undefined && floats !== undefined && policy.dtype !== floats) {
    throw new Error(
      `memory policy: dtype ${policy.dtype}, but the device counts floats as ${floats}; ` +
        `use a device with that float counting (e.g. new MetaDevice({ floats: "${policy.dtype}" }) ` +
        `or --dtype ${policy.dtype} on the meta device), or leave dtype unset`,
    );
  }
}
