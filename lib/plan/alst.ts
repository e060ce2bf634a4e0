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
 * (524,288 × 4096): Triton kernels (Liger's) index with 32-bit signed offsets. Plans can model
 * that with a binding limit of 2^31 elements ({@link TORCH_INT32_BINDING_BYTES} in bf16): a step
 * with a larger tensor does not fit. Only the 1-GPU recipe shows that limit; the claims ledger
 * (`lib/claims/alst.ts`) plans the 8- and 32-GPU setups from memory alone. Our own WGSL kernels
 * index with u32 (2^32 elements).
 */

import type { MemoryPolicy } from "../techniques/policy.ts";
import type { ModelConfig } from "../config/model_config.ts";
import { type FloatCounting, parseBytes } from "../device/dtype.ts";
import { type MaxSeqResult, maxSequence } from "./planner.ts";
import { POLICIES } from "../techniques/policy.ts";
import type { ParallelPlan } from "../sharding/parallel_plan.ts";
import { OVERHEADS } from "./gpus.ts";

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

/** The kernels' index width: `int32` as PyTorch/Triton (ALST), `u32` as this workbench's WGSL. */
export type KernelIndex = "int32" | "u32";

/**
 * The longest S of an ALST setup (or any multi-GPU policy) on meta ranks: {@link maxSequence}
 * in bf16 under `budget` (default {@link ALST_BUDGET}) on an H100 (no driver overhead; the
 * device's reserve judged), with int32 kernels modelled as a binding limit of 2^31 elements
 * ({@link TORCH_INT32_BINDING_BYTES}); `resolution` tokens per rank. Only ALST's 1-GPU recipe
 * shows the int32 limit (the claims ledger, `lib/claims/alst.ts`, applies it there only).
 */
export function planLongest(
  cfg: ModelConfig,
  policy: MemoryPolicy,
  opts: { kernels?: KernelIndex; budget?: number; dtype?: FloatCounting; resolution?: number } = {},
): Promise<MaxSeqResult> {
  const int32 = (opts.kernels ?? "int32") === "int32";
  const g = (opts.resolution ?? 1) * (policy.parallel?.sp ?? 1); // the search starts at one step
  return maxSequence({
    cfg,
    policy,
    dtype: opts.dtype ?? "bf16",
    budget: opts.budget ?? parseBytes(ALST_BUDGET),
    overhead: OVERHEADS.none,
    ...(int32 ? { limits: { maxStorageBufferBindingSize: TORCH_INT32_BINDING_BYTES } } : {}),
  }, { granularity: g, start: Math.ceil(1024 / g) * g });
}

/** An ALST setup planned under both kernel index widths. */
export interface AlstAnchor {
  /** The setup. */
  setup: AlstSetup;
  /** Longest S with int32 kernels (as ALST's), and what stopped the search. */
  int32: { maxSeq: number; limitedBy: string };
  /** Longest S with this workbench's u32 kernels, what stopped it, and its peak by tag. */
  u32: { maxSeq: number; limitedBy: string; breakdown: Record<string, number> };
  /** int32 max S / ALST's reported S. */
  ratio: number;
  /**
   * True when {@link ratio} lies within [0.75, 1.5]. A band, not a reproduction: with int32
   * kernels the binding limit places all three setups (see the claims ledger for what memory
   * alone gives).
   */
  within: boolean;
}

/** Plans one ALST setup ({@link alstPolicy}) with int32 and with u32 kernels. */
export async function planAlstAnchor(
  cfg: ModelConfig,
  setup: AlstSetup,
  opts: { budget?: number; dtype?: FloatCounting; resolution?: number } = {},
): Promise<AlstAnchor> {
  const i32 = await planLongest(cfg, alstPolicy(setup), { ...opts, kernels: "int32" });
  const u32 = await planLongest(cfg, alstPolicy(setup), { ...opts, kernels: "u32" });
  const ratio = i32.maxSeq / setup.reported;
  return {
    setup,
    int32: { maxSeq: i32.maxSeq, limitedBy: i32.limitedBy },
    u32: { maxSeq: u32.maxSeq, limitedBy: u32.limitedBy, breakdown: { ...u32.plan?.breakdown } },
    ratio,
    within: ratio >= 0.75 && ratio <= 1.5,
  };
}

/** Columns of {@link alstAnchorRow}. */
export const ALST_ANCHOR_COLUMNS: readonly string[] = [
  "setup",
  "ALST",
  "int32 kernels",
  "×",
  "stopped by",
  "u32 kernels",
  "×",
  "stopped by",
  "peak at the u32 S (GiB)",
];

/** One table row of an anchor (ratios to 2 decimals, tags above 10 MiB in GiB). */
export function alstAnchorRow(a: AlstAnchor): (string | number)[] {
  const r = (x: number) => Math.round(100 * x / a.setup.reported) / 100;
  const peak = Object.entries(a.u32.breakdown).filter(([, b]) => b > 10 * 2 ** 20)
    .map(([t, b]) => `${t} ${(b / 2 ** 30).toFixed(2)}`).join(", ");
  return [
    a.setup.name,
    a.setup.reported,
    a.int32.maxSeq,
    r(a.int32.maxSeq),
    a.int32.limitedBy,
    a.u32.maxSeq,
    r(a.u32.maxSeq),
    a.u32.limitedBy,
    peak,
  ];
}
