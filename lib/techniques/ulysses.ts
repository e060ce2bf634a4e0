/**
 * Ulysses sequence parallelism, planned as one rank's share on the meta device: each rank
 * holds S/K tokens, and around attention an all-to-all (`lib/ops/all_to_all.ts`) gives it all
 * S rows of H/K heads (KV heads replicated when K exceeds them). Policy field `parallel.sp`
 * (the rest of `parallel` is ZeRO's); flag `--sp K`. Its degree is part of the multi-GPU
 * plan's name, which ZeRO writes.
 */

import { normalizeParallel } from "../sharding/parallel_plan.ts";
import { parsePositiveInt } from "../util/flag_values.ts";
import type { Technique } from "./technique.ts";

/** Ulysses sequence parallelism of degree K. */
export const ULYSSES: Technique = {
  name: "Ulysses",
  about: "sequence parallelism: S/K tokens per rank, attention over all S for H/K heads",
  fields: ["parallel"],
  enabled: (policy) => (policy.parallel?.sp ?? 1) > 1,
  build: {
    configure(m) {
      m.settings.sp = normalizeParallel(m.policy.parallel!).sp;
    },
  },
  flags: {
    options: { sp: { type: "string" } },
    help:
      `  --sp K          Ulysses sequence parallelism: S/K tokens per rank, attention over all S for
                  H/K heads (K divides the heads; KV heads replicated when K > KV); S % K = 0`,
    apply(values, policy) {
      if (values.sp === undefined || !policy.parallel) return policy;
      const sp = parsePositiveInt("--sp", values.sp as string, 1);
      return { ...policy, parallel: { ...policy.parallel, sp } };
    },
  },
  deepspeed(policy, draft) {
    const sp = normalizeParallel(policy.parallel ?? { gpus: 1 }).sp;
    if (sp > 1) {
      draft.config.sequence_parallel_size = sp;
      if (draft.dtype !== "f32") {
        draft.config.seq_parallel_communication_data_type = draft.dtype === "bf16"
          ? "bf16"
          : "fp16";
      }
    }
    return undefined;
  },
};
