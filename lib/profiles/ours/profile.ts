/**
 * The `ours` profile: this workbench's own runtime — its layers, its fused AdamW, and its
 * device's pool allocator as the reserve (a plan counts `dev.allocator`'s reserved bytes).
 */

import { miniSequence } from "../../mst/mini_sequence.ts";
import { MiniSequenceHeadLoss } from "../../mst/mini_sequence_head.ts";
import { LMHeadLoss } from "../../nn/lm_head_loss.ts";
import { MLP } from "../../nn/mlp.ts";
import { RMSNorm } from "../../nn/rmsnorm.ts";
import { SelfAttention } from "../../nn/self_attention.ts";
import { AdamW } from "../../optim/adamw.ts";
import type { AccountingProfile } from "../profile.ts";

/** This workbench's runtime: what our own tensors hold, nothing more. */
export const OURS_PROFILE: AccountingProfile<never> = {
  name: "ours",
  about: "this workbench's runtime",
  nameSuffix: "",
  defaultOverhead: "lavapipe",
  layers: {
    norm: (dev, name, weight, eps, unitOffset) => new RMSNorm(dev, name, weight, eps, unitOffset),
    attention: (dev, name, cfg, params, window, sp) =>
      new SelfAttention(dev, name, cfg, params, window, sp),
    mlp: (dev, name, gate, up, down, activation, lora) =>
      new MLP(dev, name, gate, up, down, activation, lora),
    head: (dev, name, weight, softcap) => new LMHeadLoss(dev, name, weight, softcap),
    miniSequence: (dev, inner, opts) => miniSequence(dev, inner, opts),
    miniSequenceHead: (dev, name, weight, softcap, chunks, sizing) =>
      new MiniSequenceHeadLoss(dev, name, weight, softcap, chunks, true, sizing),
    optimizer: (dev, opts) => new AdamW(dev, opts),
  },
  attachAccounting: () => null,
};
