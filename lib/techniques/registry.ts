/**
 * Every memory technique, in declared order. `Model.build` runs their build hooks in this
 * order at each point of the build, a policy's name lists their words in this order, and
 * flags and validation follow it too. Adding a technique is one module plus one line here
 * (docs/architecture.md, "Adding a technique").
 */

import { CHECKPOINT_OFFLOAD } from "./checkpoint_offload.ts";
import { LORA } from "./lora.ts";
import { MIXED_PRECISION } from "./mixed_precision.ts";
import { MST_HEAD } from "./mst_head.ts";
import { MST_MLP } from "./mst_mlp.ts";
import { OPTIMIZER_IN_BACKWARD } from "./optimizer_in_backward.ts";
import { RECOMPUTATION } from "./recomputation.ts";
import { SELECTIVE_RECOMPUTATION } from "./selective_recomputation.ts";
import type { Technique } from "./technique.ts";
import { ULYSSES } from "./ulysses.ts";
import { ZERO } from "./zero.ts";

/** The techniques, in declared order. */
export const TECHNIQUES: readonly Technique[] = Object.freeze([
  MST_MLP,
  MST_HEAD,
  RECOMPUTATION,
  SELECTIVE_RECOMPUTATION,
  OPTIMIZER_IN_BACKWARD,
  CHECKPOINT_OFFLOAD,
  MIXED_PRECISION,
  ZERO,
  ULYSSES,
  LORA,
]);
