/**
 * The contract every memory technique implements: one module per technique in
 * `lib/techniques/`, listed in declared order in `registry.ts`. A technique owns
 *
 * - its fields of {@link MemoryPolicy}, their validation and its refusals (`validate`);
 * - its words in the policy's name (`describe`);
 * - how it transforms the model under construction (`build` hooks, run in declared order at
 *   fixed points of `Model.build`: see {@link ModelUnderConstruction});
 * - its chunk sizing, where it has one (in its own module, handed to the wrapper it builds);
 * - its command-line flags (`flags`);
 * - what the trainer does differently (`train`);
 * - its DeepSpeed config keys and the launch note's Hugging Face / ArcticTraining line
 *   (`deepspeed`).
 *
 * `MemoryPolicy` (`policy.ts`) stays the value users write; the techniques read it.
 */

import type { Device } from "../device/device.ts";
import type { FloatCounting } from "../device/dtype.ts";
import type { ModelConfig } from "../config/model_config.ts";
import type { Checkpointed } from "../mst/checkpoint.ts";
import type { MiniSequence } from "../mst/mini_sequence.ts";
import type { SeqLayer } from "../nn/layer.ts";
import type { HeadLoss } from "../nn/lm_head_loss.ts";
import type { LoraAdapter } from "../nn/lora.ts";
import type { MLPProjection } from "../nn/mlp.ts";
import type { Parameter } from "../nn/parameter.ts";
import type { AttentionProjection } from "../nn/self_attention.ts";
import type { LayerFactory } from "../profiles/profile.ts";
import type { ParallelPlan } from "../sharding/parallel_plan.ts";
import type { ZeroRank } from "../sharding/zero.ts";
import type { MemoryPolicy } from "./memory_policy.ts";

/** The parts of a policy's name: steps joined by " + ", then bracketed tags. */
export interface PolicyNameParts {
  /** e.g. "MsT", "recomputation", "optimizer-in-backward". */
  steps: string[];
  /** e.g. "f16", "8 GPUs, ZeRO-3" (each printed as ` [tag]`). */
  tags: string[];
}

/**
 * The model while `Model.build` assembles it. The plain build reads `settings` (which the
 * techniques' `configure` hooks set first) and the wrapping hooks record what the model needs
 * later (`mstMlps`, `offloaded`, `zero`).
 */
export interface ModelUnderConstruction {
  /** The device the model is built on. */
  readonly dev: Device;
  /** The model config. */
  readonly cfg: ModelConfig;
  /** The memory policy being applied. */
  readonly policy: MemoryPolicy;
  /** How weights are initialised: the seed, and given values by name (a checkpoint's). */
  readonly init: { readonly seed: number; readonly weights?: ReadonlyMap<string, Float32Array> };
  /** The profile's layer classes. */
  readonly layers: LayerFactory;
  /** What the plain build does differently, set by `configure` hooks. */
  readonly settings: BuildSettings;
  /** Every parameter so far, in `parameterShapes` order. */
  readonly params: Parameter[];
  /** Per block, its parameters. */
  readonly blockParams: Parameter[][];
  /** The blocks built so far (after the `wrapBlock` hooks). */
  readonly blocks: SeqLayer[];
  /** The mini-sequence MLPs (MsT MLP), read by `Model.resolvedChunks`. */
  readonly mstMlps: MiniSequence<unknown>[];
  /** Checkpointed blocks whose input goes to the host between forward and recomputation. */
  readonly offloaded: Checkpointed<unknown>[];
  /** Recomputation wrappers per block index (set by recomputation). */
  readonly checkpointed: (Checkpointed<unknown> | undefined)[];
  /** This rank's ZeRO state (multi-GPU plans), else null. */
  zero: ZeroRank | null;
}

/** Settings of the plain build that techniques change. */
export interface BuildSettings {
  /** Mixed precision: every parameter also gets an f32 master copy (tag `optimizer`). */
  masterWeights: boolean;
  /** Ulysses degree given to every attention layer (1: none). */
  sp: number;
  /** ZeRO-3: parameters of these shapes hold only this rank's partition; null: none. */
  partitioned: ((shape: readonly number[]) => boolean) | null;
  /** The normalized multi-GPU plan, else null. */
  parallel: Required<ParallelPlan> | null;
  /** Selective recomputation: recomputation keeps what the block marks as costly. */
  keepAttention: boolean;
  /**
   * LoRA: every parameter of `parameterShapes` is frozen (no gradient, no optimizer state, no
   * f32 master).
   */
  frozenBase: boolean;
  /** QLoRA: the blocks' seven projection weights are stored in NF4 (`Parameter.quantized`). */
  nf4Projections: boolean;
}

/** LoRA adapters of one block's projections (absent: not adapted). */
export interface BlockAdapters {
  /** Of the attention's q, k, v, o. */
  attention: Partial<Record<AttentionProjection, LoraAdapter>>;
  /** Of the MLP's gate, up, down. */
  mlp: Partial<Record<MLPProjection, LoraAdapter>>;
}

/** Hooks run by `Model.build`, each in declared technique order. */
export interface BuildHooks {
  /** Before anything is allocated: change {@link BuildSettings}. */
  configure?(m: ModelUnderConstruction): void;
  /**
   * Adapters of block `i`'s projections, created (and added to `params`) before its layers are
   * built (LoRA).
   */
  adapters?(m: ModelUnderConstruction, i: number): BlockAdapters | undefined;
  /** Wraps block `i`'s MLP (before the block is assembled). */
  wrapMlp?(m: ModelUnderConstruction, mlp: SeqLayer, i: number): SeqLayer;
  /** Wraps block `i` (after it is assembled). */
  wrapBlock?(m: ModelUnderConstruction, block: SeqLayer, i: number): SeqLayer;
  /** After every block, before the final norm and head. */
  afterBlocks?(m: ModelUnderConstruction): void;
  /** The LM head + loss instead of the profile's plain one (undefined: keep it). */
  head?(m: ModelUnderConstruction, weight: Parameter): HeadLoss | undefined;
}

/** What the trainer does differently. */
export interface TrainSettings {
  /** Step each parameter as soon as its gradient is complete (no global clipping). */
  optimizerInBackward: boolean;
}

/** Command-line flags of a technique. */
export interface TechniqueFlags {
  /** `parseArgs` options. */
  readonly options: Readonly<Record<string, { type: "string" | "boolean" }>>;
  /** Usage lines (indented two spaces, as the tasks print them). */
  readonly help: string;
  /** The policy with the given flag values applied (values absent: unchanged). */
  apply(values: Record<string, unknown>, policy: MemoryPolicy): MemoryPolicy;
}

/** A DeepSpeed export under construction. */
export interface DeepSpeedDraft {
  /** The config object (keys are ordered canonically when written). */
  config: Record<string, unknown>;
  /** The float counting of the plan. */
  dtype: FloatCounting;
  /** The whole planned S. */
  seq: number;
  /** M each chunked part ran (null: unchunked or unknown). */
  chunks: { mlp: number | null; head: number | null };
}

/** One memory technique. */
export interface Technique {
  /** Its name, e.g. "checkpoint offload". */
  readonly name: string;
  /** One line: what it does to memory. */
  readonly about: string;
  /** The {@link MemoryPolicy} fields it owns (a policy key no technique owns is refused). */
  readonly fields: readonly string[];
  /**
   * Whether the policy turns it on; `floats`, when known, is how the device counts floats (an
   * f16 device turns mixed precision on).
   */
  enabled(policy: MemoryPolicy, floats?: FloatCounting): boolean;
  /**
   * Throws a clear error for a malformed setting of its fields or a combination it refuses,
   * saying how to fix it. `floats`: how the device counts floats, when known.
   */
  validate?(policy: MemoryPolicy, floats?: FloatCounting): void;
  /** Adds its words to the policy's name (called only when enabled). */
  describe?(policy: MemoryPolicy, name: PolicyNameParts): void;
  /** Its model transform. */
  readonly build?: BuildHooks;
  /** Its effect on the trainer (called only when enabled). */
  train?(policy: MemoryPolicy, settings: TrainSettings): void;
  /** Its flags. */
  readonly flags?: TechniqueFlags;
  /**
   * Its DeepSpeed / ArcticTraining mapping: config keys it sets (called whether enabled or not,
   * so it can write "off"), and its line of the launch note's Hugging Face / ArcticTraining
   * settings, if it has one. Throws when the export cannot hold what the plan counts.
   */
  deepspeed?(policy: MemoryPolicy, draft: DeepSpeedDraft): string | undefined;
}
