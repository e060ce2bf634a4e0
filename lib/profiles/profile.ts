/**
 * A framework accounting profile: whose allocations a step counts. The math is the same for
 * every profile (the same kernels, loss and gradients); a profile decides which layer classes
 * the model is built from — ours, or subclasses that also allocate the buffers another
 * framework would — which optimizer steps it, and how a plan turns the device's allocations
 * into the bytes that framework holds (its allocator model and catalog of extra buffers).
 *
 * Each profile is one folder: `lib/profiles/ours/`, `lib/profiles/hf/`. A future profile
 * (Liger, ArcticTraining, Megatron) is one more folder implementing {@link AccountingProfile},
 * listed in `lib/profiles/registry.ts`.
 */

import type { Allocator } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import type { ModelConfig } from "../config/model_config.ts";
import type { Chunks } from "../mst/chunking.ts";
import type { MiniSequence, MiniSequenceOptions } from "../mst/mini_sequence.ts";
import type { HeadSizing, MiniSequenceHeadLoss } from "../mst/mini_sequence_head.ts";
import type { SeqLayer } from "../nn/layer.ts";
import type { HeadLoss } from "../nn/lm_head_loss.ts";
import type { BaseWeight, LoraAdapter } from "../nn/lora.ts";
import type { MLPProjection } from "../nn/mlp.ts";
import type { Parameter } from "../nn/parameter.ts";
import type { RMSNorm } from "../nn/rmsnorm.ts";
import type { AttentionParams, SelfAttention } from "../nn/self_attention.ts";
import type { AdamW, AdamWOptions } from "../optim/adamw.ts";

/** Builds the layers of a model under one profile. */
export interface LayerFactory {
  /** An RMSNorm over `weight`. */
  norm(dev: Device, name: string, weight: Parameter, eps: number, unitOffset: boolean): RMSNorm;
  /** Self-attention of one block; `sp` is the Ulysses degree (1: no sequence parallelism). */
  attention(
    dev: Device,
    name: string,
    cfg: ModelConfig,
    params: AttentionParams,
    window: number,
    sp: number,
  ): SelfAttention;
  /** The gated MLP of one block (base weights frozen and adapters given under LoRA). */
  mlp(
    dev: Device,
    name: string,
    gate: BaseWeight,
    up: BaseWeight,
    down: BaseWeight,
    activation: ModelConfig["activation"],
    lora?: Partial<Record<MLPProjection, LoraAdapter>>,
  ): SeqLayer;
  /** The unchunked LM head + cross-entropy. */
  head(dev: Device, name: string, weight: Parameter, finalSoftcap: number): HeadLoss;
  /** A layer run over mini-sequences of its rows (MsT's MLP wrapper). */
  miniSequence(dev: Device, inner: SeqLayer, opts: MiniSequenceOptions): MiniSequence<unknown>;
  /** The LM head + loss over mini-sequences of the rows (MsT's head). */
  miniSequenceHead(
    dev: Device,
    name: string,
    weight: Parameter,
    finalSoftcap: number,
    chunks: Chunks,
    sizing: HeadSizing,
  ): MiniSequenceHeadLoss;
  /** The AdamW optimizer that steps the parameters. */
  optimizer(dev: Device, opts: AdamWOptions): AdamW;
}

/** What a profile's accounting reports after a plan (PyTorch's figures for `hf`). */
export interface ProfileAccounting<F> {
  /** The figures so far. */
  figures(): F;
  /** Stops observing the allocator. */
  detach(): void;
}

/** One framework accounting profile. */
export interface AccountingProfile<F = unknown> {
  /** Its name in policies and flags (`--framework NAME`). */
  readonly name: string;
  /** One line: what it counts. */
  readonly about: string;
  /** Appended to a policy's name (e.g. `" (HF)"`; empty for ours). */
  readonly nameSuffix: string;
  /** The layer classes, head and optimizer. */
  readonly layers: LayerFactory;
  /**
   * The driver overhead a plan assumes when none is given (`"lavapipe"` for our runtime on this
   * machine, `"none"` for a framework modelled on a CUDA GPU).
   */
  readonly defaultOverhead: "lavapipe" | "none";
  /**
   * Attaches the profile's allocator model and extras catalog to a plan's device allocator,
   * over `capacity` bytes; null when the device's own pool is the model (ours).
   */
  attachAccounting(allocator: Allocator<unknown>, capacity: number): ProfileAccounting<F> | null;
}
