/**
 * Activation recomputation: each decoder block keeps only its input (tag `checkpoints`) and
 * recomputes its forward in backward (`lib/mst/checkpoint.ts`). Policy field `checkpoint`;
 * flag `--checkpoint`.
 */

import { checkpoint } from "../mst/checkpoint.ts";
import type { Technique } from "./technique.ts";

/** Activation recomputation per decoder block. */
export const RECOMPUTATION: Technique = {
  name: "recomputation",
  about: "each decoder block keeps only its input and recomputes its forward in backward",
  fields: ["checkpoint"],
  enabled: (policy) => policy.checkpoint === true,
  validate(policy) {
    if (policy.checkpoint !== undefined && typeof policy.checkpoint !== "boolean") {
      throw new Error(
        `memory policy: checkpoint must be true or false, got ${JSON.stringify(policy.checkpoint)}`,
      );
    }
  },
  describe(_policy, name) {
    name.steps.push("recomputation");
  },
  build: {
    wrapBlock(m, block, i) {
      const wrapped = checkpoint(m.dev, block, { keep: m.settings.keepAttention });
      m.checkpointed[i] = wrapped;
      return wrapped;
    },
  },
  flags: {
    options: { checkpoint: { type: "boolean" } },
    help: "",
    apply: (values, policy) => values.checkpoint ? { ...policy, checkpoint: true } : policy,
  },
  deepspeed(policy, draft) {
    if (policy.checkpoint) {
      draft.config.activation_checkpointing = {
        partition_activations: false,
        cpu_checkpointing: policy.offload === true,
        contiguous_memory_optimization: false,
      };
    }
    return `- Activation recomputation: ${
      policy.checkpoint ? "on (`model.gradient_checkpointing_enable()`)" : "off"
    }.`;
  },
};
