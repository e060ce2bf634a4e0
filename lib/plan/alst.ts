/**
 * Snowflake's Arctic Long Sequence Training (ALST, arXiv 2506.13996) Llama-8B setups, as plans.
 *
 * ALST reports the longest trainable sequence of Llama-3.1-8B on H100 80 GB GPUs: 500K tokens on
 * 1 GPU, 3.7M on 8 (one node), 15M on 32 (four nodes). The ingredients of each setup are taken
 * from ArcticTraining's recipes, `projects/sequence-parallelism/run-h100-sp{1,8,32}-llama-8b.yml`
 * (github.com/snowflakedb/ArcticTraining):
 * - all three: `micro_batch_size: 1`, bf16, `activation_checkpoint_cpu_offload: true`,
 *   `tiled_mlp_compute: true` (TiledMLP, ⌈seqlen/hidden⌉ shards per rank), `model.type: liger`
 *   (Liger-Kernel's fused linear cross-entropy: the tiled loss), FlashAttention-2, ZeRO stage 3
 *   with `offload_optimizer: {device: cpu}` (CPU Adam), `PYTORCH_CUDA_ALLOC_CONF=
 *   expandable_segments:True`, DeepSpeed's ZeRO defaults otherwise (no bucket sizes set);
 * - 1 GPU: also `offload_param: {device: cpu}`, `sequence_parallel_size: 1`, `max_length: 500000`
 *   with the comment "555000 # Triton Error [CUDA]: an illegal memory access was encountered";
 * - 8 GPUs: `sequence_parallel_size: 8`, `max_length: 3800000`;
 * - 32 GPUs: `sequence_parallel_size: 32`, `max_length: 15_500_000`.
 *
 * The crash past 500K on one GPU is where a (S, d) tensor reaches 2^31 elements
 * (524,288 × 4096): Triton kernels (Liger's) index with 32-bit signed offsets. Plans model that
 * with a binding limit of 2^31 elements ({@link TORCH_INT32_BINDING_BYTES} in bf16): a step
 * with a larger tensor does not fit. Our own WGSL kernels index with u32 (2^32 elements).
 */

import type { MemoryPolicy } from "../models/policy.ts";
import { POLICIES } from "../models/policy.ts";
import type { ParallelPlan } from "../models/parallel.ts";

/** One ALST setup: its ingredients and its reported longest sequence. */
export interface AlstSetup {
  /** Short name, e.g. `"1×H100"`. */
  name: string;
  /** The multi-GPU plan (N, ZeRO, SP, offloads). */
  parallel: ParallelPlan;
  /** ALST's reported longest trainable S (tokens). */
  reported: number;
  /** The recipe's `max_length`. */
  recipeMaxLength: number;
  /** The ArcticTraining recipe the ingredients come from. */
  recipe: string;
}

/** The three Llama-8B setups of ALST (arXiv 2506.13996, ArcticTraining's recipes). */
export const ALST_SETUPS: readonly AlstSetup[] = Object.freeze([
  {
    name: "1×H100",
    parallel: { gpus: 1, zero: 3, sp: 1, offloadOptimizer: true, offloadParams: true },
    reported: 500_000,
    recipeMaxLength: 500_000,
    recipe: "projects/sequence-parallelism/run-h100-sp1-llama-8b.yml",
  },
  {
    name: "8×H100",
    parallel: { gpus: 8, zero: 3, sp: 8, offloadOptimizer: true },
    reported: 3_700_000,
    recipeMaxLength: 3_800_000,
    recipe: "projects/sequence-parallelism/run-h100-sp8-llama-8b.yml",
  },
  {
    name: "32×H100",
    parallel: { gpus: 32, zero: 3, sp: 32, offloadOptimizer: true },
    reported: 15_000_000,
    recipeMaxLength: 15_500_000,
    recipe: "projects/sequence-parallelism/run-h100-sp32-llama-8b.yml",
  },
]);

/** The preset ALST trained (Llama-3.1-8B has Llama-3-8B's shapes). */
export const ALST_PRESET = "llama3-8b";

/** H100 80 GB: the budget of each rank (80 GiB as the workbench's other 8B plans). */
export const ALST_BUDGET = "80GiB";

/** 2^31 bf16 elements in bytes: the largest tensor a kernel with int32 offsets can take. */
export const TORCH_INT32_BINDING_BYTES = 2 ** 31 * 2;

/**
 * The memory policy of an ALST setup: MsT (tiled MLP and loss, M auto) + recomputation +
 * checkpoint offload, with the setup's ZeRO / SP / offload plan.
 */
export function alstPolicy(setup: AlstSetup): MemoryPolicy {
  return { ...POLICIES.mstOffload, parallel: setup.parallel };
}
