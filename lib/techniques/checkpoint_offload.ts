/**
 * Checkpoint offload: with recomputation, each decoder block's input checkpoint stays in host
 * memory between the block's forward and its recomputation (copied out through a mappable
 * buffer after the forward, the device copy freed; uploaded back before the recomputation).
 * Host bytes are counted under the allocator's `host` tag, outside the device's peak and
 * budget. Policy field `offload`; flag `--offload-checkpoints`.
 */

import type { Technique } from "./technique.ts";

/** Block input checkpoints kept in host memory. */
export const CHECKPOINT_OFFLOAD: Technique = {
  name: "checkpoint offload",
  about: "each block's input checkpoint waits in host memory until its recomputation",
  fields: ["offload"],
  enabled: (policy) => policy.offload === true,
  validate(policy) {
    if (policy.offload !== undefined && typeof policy.offload !== "boolean") {
      throw new Error(
        `memory policy: offload must be true or false, got ${JSON.stringify(policy.offload)}`,
      );
    }
    if (policy.offload && !policy.checkpoint) {
      throw new Error(
        "memory policy: offload moves the block checkpoints to the host, but checkpoint " +
          "(recomputation) is off, so there are none; set checkpoint: true (--checkpoint) with " +
          "offload: true (--offload-checkpoints), or leave offload unset",
      );
    }
  },
  describe(_policy, name) {
    name.steps.push("checkpoint offload");
  },
  build: {
    wrapBlock(m, block, i) {
      const wrapped = m.checkpointed[i];
      if (!wrapped) {
        throw new Error(`checkpoint offload: block ${i} is not recomputed; set checkpoint: true`);
      }
      m.offloaded.push(wrapped);
      return block;
    },
  },
  flags: {
    options: { "offload-checkpoints": { type: "boolean" } },
    help: `  --offload-checkpoints  keep each block's input checkpoint in host memory between its
                  forward and its recomputation (needs --checkpoint); host bytes are reported
                  apart (tag host), outside the device peak and budget`,
    apply(values, policy) {
      if (!values["offload-checkpoints"]) return policy;
      if (!policy.checkpoint) {
        throw new Error(
          "--offload-checkpoints moves the recomputation checkpoints to host memory, but " +
            "recomputation is off; add --checkpoint (or --policy mst)",
        );
      }
      return { ...policy, offload: true };
    },
  },
  deepspeed(policy) {
    return `- Checkpoint offload: ${
      policy.offload
        ? "on — ArcticTraining `activation_checkpoint_cpu_offload: true` (for " +
          "non-reentrant checkpointing, DeepSpeed's " +
          "`get_checkpoint_hidden_states_offloading_ctx_manager`)"
        : "off"
    }.`;
  },
};
