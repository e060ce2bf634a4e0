/**
 * Optimizer-in-backward: each parameter is updated, and its gradient freed, as soon as that
 * gradient is complete in backward, so at most a block's gradients are live (global gradient
 * clipping is then off). Policy field `optimizerInBackward`; flag `--optimizer-in-backward`.
 */

import { isSingleDevice, normalizeParallel } from "../sharding/parallel_plan.ts";
import type { Technique } from "./technique.ts";

/** AdamW steps each parameter inside backward. */
export const OPTIMIZER_IN_BACKWARD: Technique = {
  name: "optimizer-in-backward",
  about: "each parameter is stepped and its gradient freed as soon as the gradient is complete",
  fields: ["optimizerInBackward"],
  enabled: (policy) => policy.optimizerInBackward === true,
  validate(policy, floats) {
    if (!policy.optimizerInBackward) return;
    if (policy.dtype === "f16" || floats === "f16") {
      throw new Error(
        `memory policy: optimizerInBackward cannot run in mixed precision (f16): dynamic loss ` +
          `scaling must see every gradient before any update to skip an overflowing step; drop ` +
          `optimizer-in-backward or use f32`,
      );
    }
    if (policy.parallel === undefined) return;
    if (normalizeParallel(policy.parallel).zero > 0) {
      throw new Error(
        "memory policy: optimizer-in-backward does not combine with ZeRO (DeepSpeed steps the " +
          "sharded optimizer after backward); drop --optimizer-in-backward or use --zero 0",
      );
    }
    if (!isSingleDevice(policy.parallel)) {
      throw new Error(
        "memory policy: optimizer-in-backward is planned on one device only; drop it for a multi-GPU plan",
      );
    }
  },
  describe(_policy, name) {
    name.steps.push("optimizer-in-backward");
  },
  train(_policy, settings) {
    settings.optimizerInBackward = true;
  },
  flags: {
    options: { "optimizer-in-backward": { type: "boolean" } },
    help: "",
    apply: (values, policy) =>
      values["optimizer-in-backward"] ? { ...policy, optimizerInBackward: true } : policy,
  },
};
