/**
 * The memory policy: how a training step is run, the only such type. The model builder,
 * the trainer, the step driver, the planner, the CLI flags, the bench and the experiments
 * all take a {@link MemoryPolicy}; each field belongs to one technique of
 * `lib/techniques/` (or, `framework`, to the accounting profiles of `lib/profiles/`).
 *
 * Every field is optional; `{}` is standard training (no recomputation, unchunked MLP and
 * head, AdamW after backward, this workbench's own allocations).
 */

import type { FloatCounting } from "../device/dtype.ts";
import type { Chunks } from "../mst/chunking.ts";
import type { LoraTarget } from "../nn/lora_options.ts";
import type { Framework } from "../profiles/registry.ts";
import type { ParallelPlan } from "../sharding/parallel_plan.ts";

/** M for one part: a number of mini-sequences, `"auto"` (see `lib/mst/chunking.ts`), or off. */
export type PartChunks = Chunks | "off";

/** Mini-sequence settings per part; an absent part is `"off"`. */
export interface MstParts {
  /** M for the MLP of every decoder block. */
  readonly mlp?: PartChunks;
  /** M for the LM head and its loss (the (S, V) logits become (S/M, V) chunks). */
  readonly head?: PartChunks;
}

/** LoRA fine-tuning settings (`lib/techniques/lora.ts`; flags `--lora`, `--base-dtype`). */
export interface LoraPolicy {
  /** Rank r. */
  readonly r: number;
  /** PEFT's `lora_alpha`: the scaling is alpha/r (alpha/√r with `rslora`). */
  readonly alpha: number;
  /** Adapted projections (default all seven: q, k, v, o, gate, up, down). */
  readonly targets?: readonly LoraTarget[];
  /** rsLoRA scaling alpha/√r (default false). */
  readonly rslora?: boolean;
  /**
   * Storage of the frozen base's projection weights: `"nf4"` (QLoRA: bitsandbytes' NF4 with
   * double-quantised absmax) or the device's float type (`"f32"`, `"f16"`, `"bf16"`: must be
   * how the device counts floats). Default: the device's floats.
   */
  readonly base?: "nf4" | FloatCounting;
}

/** How a training step is run. */
export interface MemoryPolicy {
  /**
   * LoRA: every base weight frozen (no gradient, no optimizer state), a trainable low-rank
   * adapter on each targeted projection (PEFT's semantics), optionally an NF4 base (QLoRA).
   */
  readonly lora?: LoraPolicy;
  /** Activation recomputation per decoder block: keep only its input (default false). */
  readonly checkpoint?: boolean;
  /**
   * Selective recomputation: with `checkpoint`, each decoder block also keeps its attention
   * output and softmax statistics ((S, H·hd) in the activation dtype + (H, S) f32, tagged
   * `checkpoints`), so the recomputation redoes the norms, projections, rotary embedding and
   * MLP but not the attention kernel, whose cost grows as S² (the opposite choice from
   * Megatron-Core's default selective recomputation, which recomputes only the attention
   * core). Loss and gradients equal full
   * recomputation bit for bit. Needs `checkpoint`; not with `framework: "hf"` or `offload`
   * (default false).
   */
  readonly keepAttention?: boolean;
  /** Mini-sequence wrappers (MsT) per part (default: both off). */
  readonly mst?: MstParts;
  /**
   * Update each parameter and free its gradient as soon as that gradient is complete, in
   * backward (global gradient clipping is then off; default false).
   */
  readonly optimizerInBackward?: boolean;
  /**
   * Whose allocations a step counts: this workbench's runtime (`"ours"`, default) or Hugging
   * Face transformers + PyTorch's (`"hf"`: our layers plus the extra buffers transformers and
   * PyTorch allocate — fp32 RMSNorm upcasts, fp32 logits, the saved SiLU output, RoPE and
   * FlashAttention-2 temporaries, `torch.optim`'s temporaries — see `lib/profiles/hf/extras.ts`;
   * a plan also runs PyTorch's caching allocator model). The paper's baselines. The math is
   * the same either way.
   */
  readonly framework?: Framework;
  /**
   * Checkpoint offload: keep each decoder block's input checkpoint in host memory between
   * the block's forward and its recomputation (copied out through a mappable buffer after the
   * forward, the device copy freed; uploaded back before the recomputation). Host bytes are
   * counted under the allocator's `host` tag, outside the device's peak and budget. Needs
   * `checkpoint` (default false).
   */
  readonly offload?: boolean;
  /**
   * How floats are stored. When set, the device must count floats this way (e.g. a
   * `MetaDevice({ floats: "bf16" })`): {@link validatePolicy} refuses a mismatch, so a plan
   * and a run cannot silently disagree. Unset: the device's own counting.
   */
  readonly dtype?: FloatCounting;
  /**
   * One rank's share of a multi-GPU run (ZeRO stage, Ulysses SP degree, optimizer and
   * parameter offload; see `lib/sharding/parallel_plan.ts`), planned on the meta device only. Absent or a single
   * device with nothing sharded: the ordinary step.
   */
  readonly parallel?: ParallelPlan;
}
