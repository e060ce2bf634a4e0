/**
 * Selective recomputation: with recomputation, each decoder block also keeps its attention
 * output and softmax statistics ((S, H·hd) in the activation dtype + (H, S) f32, tag
 * `checkpoints`), so the recomputation redoes the norms, projections, rotary embedding and MLP
 * but not the attention kernel, whose cost grows as S² — the opposite choice from
 * Megatron-Core's default selective recomputation, which recomputes only the attention core.
 * Loss and gradients equal full recomputation bit for bit. Policy field `keepAttention`; flag
 * `--keep-attention`.
 */

import type { Technique } from "./technique.ts";

/** Recomputation that keeps each block's attention output. */
export const SELECTIVE_RECOMPUTATION: Technique = {
  name: "selective recomputation",
  about: "recomputation keeps each block's attention output, so backward skips the attention",
  fields: ["keepAttention"],
  enabled: (policy) => policy.keepAttention === true,
  validate(policy) {
    if (policy.keepAttention !== undefined && typeof policy.keepAttention !== "boolean") {
      throw new Error(
        `memory policy: keepAttention must be true or false, got ${
          JSON.stringify(policy.keepAttention)
        }`,
      );
    }
    if (!policy.keepAttention) return;
    if (!policy.checkpoint) {
      throw new Error(
        "memory policy: keepAttention keeps the attention output through recomputation, but " +
          "checkpoint (recomputation) is off; set checkpoint: true (--checkpoint) with " +
          "keepAttention: true (--keep-attention), or leave keepAttention unset",
      );
    }
    if (policy.framework === "hf") {
      throw new Error(
        `memory policy: keepAttention with framework "hf": transformers' gradient checkpointing ` +
          `recomputes whole layers and has no selective mode; use framework "ours" for selective ` +
          `recomputation, or drop keepAttention for the HF profile`,
      );
    }
    if (policy.offload) {
      throw new Error(
        "memory policy: keepAttention with offload: checkpoint offload moves only the block " +
          "inputs to the host, and the kept attention outputs would stay on the device " +
          "unnoticed; choose one of --keep-attention and --offload-checkpoints",
      );
    }
  },
  describe(_policy, name) {
    const i = name.steps.indexOf("recomputation");
    if (i >= 0) name.steps[i] = "recomputation (attention kept)";
  },
  build: {
    configure(m) {
      m.settings.keepAttention = true;
    },
  },
  flags: {
    options: { "keep-attention": { type: "boolean" } },
    help:
      `  --keep-attention  selective recomputation (needs --checkpoint): each block also keeps its
                  attention output and softmax statistics, so backward skips the attention
                  kernel; more checkpoint memory, less recomputation time at long S`,
    apply(values, policy) {
      if (!values["keep-attention"]) return policy;
      if (!policy.checkpoint) {
        throw new Error(
          "--keep-attention keeps each block's attention output through recomputation, but " +
            "recomputation is off; add --checkpoint (or --policy mst)",
        );
      }
      return { ...policy, keepAttention: true };
    },
  },
  deepspeed(policy) {
    if (policy.keepAttention) {
      throw new Error(
        "--export deepspeed with --keep-attention: the exported run recomputes whole layers " +
          "(transformers' gradient checkpointing has no selective mode), so it would not hold " +
          "what this plan counts; plan without --keep-attention to export",
      );
    }
    return undefined;
  },
};
