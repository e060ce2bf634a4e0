/**
 * The `hf` profile: Hugging Face transformers + PyTorch, as the MsT paper ran its baselines.
 * Our layers plus the extra buffers transformers and PyTorch allocate (the catalog in
 * `extras.ts`, allocated by the subclasses in `layers.ts`, `head_loss.ts` and
 * `torch_adamw.ts`), and PyTorch's caching allocator (`caching_allocator.ts`) as the reserve a
 * plan reports.
 */

import type { AccountingProfile } from "../profile.ts";
import { attachHFAccounting, type HFPlanFigures } from "./extras.ts";
import { HFLMHeadLoss } from "./head_loss.ts";
import {
  HFMiniSequence,
  HFMiniSequenceHeadLoss,
  HFMLP,
  HFRMSNorm,
  HFSelfAttention,
} from "./layers.ts";
import { TorchAdamW } from "./torch_adamw.ts";

/** transformers + PyTorch: our layers plus the buffers they allocate, on a CUDA caching allocator. */
export const HF_PROFILE: AccountingProfile<HFPlanFigures> = {
  name: "hf",
  about: "Hugging Face transformers + PyTorch",
  nameSuffix: " (HF)",
  defaultOverhead: "none",
  layers: {
    norm: (dev, name, weight, eps, unitOffset) => new HFRMSNorm(dev, name, weight, eps, unitOffset),
    attention: (dev, name, cfg, params, window, sp) =>
      new HFSelfAttention(dev, name, cfg, params, window, sp),
    mlp: (dev, name, gate, up, down, activation, lora) =>
      new HFMLP(dev, name, gate, up, down, activation, lora),
    head: (dev, name, weight, softcap) => new HFLMHeadLoss(dev, name, weight, softcap),
    miniSequence: (dev, inner, opts) => new HFMiniSequence(dev, inner, opts),
    miniSequenceHead: (dev, name, weight, softcap, chunks, sizing) =>
      new HFMiniSequenceHeadLoss(dev, name, weight, softcap, chunks, sizing),
    optimizer: (dev, opts) => new TorchAdamW(dev, opts),
  },
  attachAccounting: (allocator, capacity) => attachHFAccounting(allocator, capacity),
};
