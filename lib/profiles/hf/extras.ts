/**
 * The Hugging Face profile (`plan --framework hf`): what transformers + PyTorch allocate
 * beyond this workbench's own tensors when they train a Llama-family model, as the MsT paper
 * ran it (transformers 4.42–4.44, the mid-2024 `modeling_llama.py` the reference code
 * `wdlctc/mini-s` wraps; FlashAttention-2; `torch.optim.AdamW`; PyTorch's CUDA caching
 * allocator).
 *
 * Each extra buffer is one entry of {@link HF_EXTRAS}, with the transformers/PyTorch source it
 * comes from. The HF layers (`lib/profiles/hf/layers.ts`, `lib/profiles/hf/head_loss.ts`,
 * `lib/profiles/hf/torch_adamw.ts`) allocate them through {@link hfExtra} beside the buffers our
 * layers allocate anyway, at the moment PyTorch would, and free them when PyTorch would.
 * The name of every extra tensor carries `hf:<kind>`, which is how {@link ExtrasTracker}
 * reports them per kind. Extras are memory emulation: on WebGPU they are real buffers that
 * no kernel reads, so the math (loss, gradients) stays exactly ours.
 *
 * Where our own tensor stands for one of PyTorch's (e.g. our saved bf16 RMSNorm input, where
 * transformers saves its fp32 upcast), the extra is only the difference, so a buffer is never
 * counted twice; see each entry.
 */

import type { AllocationObserver, Allocator, Block, Tag } from "../../device/allocator.ts";
import type { Device } from "../../device/device.ts";
import type { FloatCounting } from "../../device/dtype.ts";
import type { Tensor } from "../../device/tensor.ts";
import { CachingAllocatorModel } from "./caching_allocator.ts";

/** One kind of extra buffer. */
export interface HFExtraKind {
  /** The transformers / PyTorch / FlashAttention source: file and function. */
  readonly source: string;
  /** What it is and when it lives. */
  readonly what: string;
}

/** Every extra buffer the HF profile counts, by kind. */
export const HF_EXTRAS = {
  rmsnorm_upcast: {
    source: "transformers models/llama/modeling_llama.py LlamaRMSNorm.forward",
    what: "`hidden_states.to(torch.float32)` (S, d) fp32, saved for backward by `pow(2)` and " +
      "by the product with `rsqrt` (PowBackward0, MulBackward0). Ours saves the bf16 input " +
      "instead: the extra is the fp32 copy less that (0 bytes in an f32 plan, where `.to` is a " +
      "no-op). Lives from the norm's forward to its backward.",
  },
  rmsnorm_normed: {
    source: "transformers models/llama/modeling_llama.py LlamaRMSNorm.forward",
    what: "`hidden_states.to(input_dtype)` (S, d), model dtype, saved by `self.weight * …` " +
      "(MulBackward0 keeps the other operand for the weight's gradient). Forward to backward.",
  },
  rmsnorm_temp: {
    source: "transformers models/llama/modeling_llama.py LlamaRMSNorm.forward; " +
      "torch autograd PowBackward0 / MulBackward0 / ToCopyBackward0",
    what: "fp32 (S, d) transients: `pow(2)` output and `hidden_states * rsqrt(...)` in forward; " +
      "the fp32 gradient of the upcast and the `pow` backward product in backward.",
  },
  rope_temp: {
    source: "transformers models/llama/modeling_llama.py apply_rotary_pos_emb, rotate_half",
    what: "`q * cos`, `rotate_half(q)` (`torch.cat((-x2, x1))`) and `rotate_half(q) * sin` " +
      "(S, H·hd) transients (and k's, KV heads); in backward the gradients through the same " +
      "products. Nothing is saved: `mul` by cos/sin keeps only cos/sin, shared by the layers.",
  },
  fa2_lse: {
    source: "flash-attn 2 csrc/flash_attn/flash_api.cpp mha_fwd (softmax_lse); " +
      "flash_attn_interface.py FlashAttnFunc.forward (ctx.save_for_backward)",
    what: "the log-sum-exp per head per token (B, H, S) in fp32, saved for backward. Ours " +
      "saves it in the model dtype: the extra is the rest of fp32.",
  },
  fa2_backward: {
    source: "flash-attn 2 csrc/flash_attn/flash_api.cpp mha_bwd",
    what: "backward workspaces: `dq_accum` (B, S, H, hd) fp32, `softmax_d` (B, H, S) fp32, and " +
      "with grouped-query attention `dk_expanded` / `dv_expanded` (B, S, H, hd) before the sum " +
      "over the head groups.",
  },
  mlp_act: {
    source: "transformers models/llama/modeling_llama.py LlamaMLP.forward",
    what: "`act_fn(gate_proj(x))`, the SiLU output (S, I), saved by the product with " +
      "`up_proj(x)` (MulBackward0 keeps both operands); our GLU kernels recompute it. " +
      "Forward to backward.",
  },
  mlp_grad_temp: {
    source: "torch autograd MulBackward0 / SiluBackward0 under LlamaMLP.forward",
    what: "the gradient of `act * up` from the down projection (S, I) and the gradient of the " +
      "SiLU output (S, I), live beside d(gate) and d(up), which our fused kernel forms " +
      "directly.",
  },
  logits: {
    source: "transformers models/llama/modeling_llama.py LlamaForCausalLM.forward; " +
      "torch.nn.CrossEntropyLoss (log_softmax + nll_loss)",
    what: "`logits.float()` (S, V) fp32 (held by the returned CausalLMOutputWithPast through " +
      "backward), `logits[..., :-1, :].contiguous()` (S, V) fp32, log_softmax's saved fp32 " +
      "output, and in backward the fp32 gradients of the log-probabilities, of the shifted " +
      "logits and of the upcast (see `lib/profiles/hf/head_loss.ts`).",
  },
  mst_head_hidden: {
    source: "mini-s minis/mini_sequence.py LlamaForCausalLMWarpper.minis_processing",
    what: "`hidden_states[..., i*tmp:(i+1)*tmp, :].contiguous()` per chunk, saved by the " +
      "chunk's `_LM_head` (ctx.save_for_backward): (S, d) over all chunks, forward to backward.",
  },
  mst_head_fp32: {
    source: "mini-s minis/mini_sequence.py _LM_head.forward / _LM_head.backward",
    what: "per chunk: `F.linear(...).float()` (S/M, V) fp32 and CrossEntropyLoss's log_softmax " +
      "(S/M, V) fp32 in forward; in backward the recomputed fp32 logits, `F.softmax` (S/M, V) " +
      "fp32 and its bf16 cast (S/M, V).",
  },
  mst_mlp_saved: {
    source: "mini-s minis/mini_sequence.py LlamaMLPWarpper.forward under " +
      "torch.utils.checkpoint (CheckpointFunction.backward)",
    what: "the recomputed layer runs with grad enabled, so every chunk's MLP saves its gate, " +
      "SiLU output, up and product (4 × (S, I) over all chunks) until the layer's backward; " +
      "ours recomputes chunk by chunk. Freed at the end of the MLP's backward.",
  },
  adamw_foreach: {
    source: "torch/optim/adamw.py _multi_tensor_adamw",
    what: "`exp_avg_sq_sqrt = torch._foreach_sqrt(device_exp_avg_sqs)`: a copy of every second " +
      "moment during the optimizer step (foreach is the default on CUDA); `optimizer.zero_grad()` " +
      "frees the gradients only after it.",
  },
  adam_single: {
    source: "torch/optim/adam.py _single_tensor_adam",
    what: "`denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)`: two temporaries of " +
      "the parameter's size per update (`Adam([p], foreach=False)` of the optimizer-in-backward " +
      "hooks).",
  },
} as const satisfies Record<string, HFExtraKind>;

/** A kind of {@link HF_EXTRAS}. */
export type HFExtraName = keyof typeof HF_EXTRAS;

/** The marker in an extra tensor's name: `<layer>.hf:<kind>`. */
export const HF_MARK = "hf:";

/** Options of {@link hfExtra}. */
export interface HFExtraOptions {
  /** Accounting tag (default `activations`). */
  tag?: Tag;
  /** Count as fp32 whatever the device's counting (PyTorch's fp32 upcasts). */
  fp32?: boolean;
}

/**
 * Allocates one extra buffer of `kind` for layer `owner`: `shape` elements in the model
 * dtype, or fp32 with `fp32`. It holds no values anyone reads.
 */
export function hfExtra(
  dev: Device,
  owner: string,
  kind: HFExtraName,
  shape: readonly number[],
  opts: HFExtraOptions = {},
): Tensor {
  return dev.tensor(shape, {
    tag: opts.tag ?? "activations",
    name: `${owner}.${HF_MARK}${kind}`,
    ...(opts.fp32 ? { countAs: "f32" as const } : {}),
  });
}

/**
 * Elements of fp32 storage that an fp32 copy of `elements` model-dtype elements needs beyond
 * the model-dtype tensor itself, expressed in model-dtype elements: 1 for bf16/f16 (4 − 2 = 2
 * bytes = one more element), 0 for f32 (the upcast is a no-op).
 */
export function upcastExcessElements(floats: FloatCounting, elements: number): number {
  return floats === "f32" ? 0 : elements;
}

/** Allocates the transients of `kinds` (each a shape and precision), returns their disposer. */
export function hfTransients(
  dev: Device,
  owner: string,
  items: readonly { kind: HFExtraName; shape: readonly number[]; fp32?: boolean }[],
  tag: Tag = "workspace",
): () => void {
  const ts = items.map((i) => hfExtra(dev, owner, i.kind, i.shape, { tag, fp32: i.fp32 }));
  return () => ts.forEach((t) => t.dispose());
}

/** Bytes of one extra kind. */
export interface ExtraBytes {
  /** The kind (a key of {@link HF_EXTRAS}). */
  kind: string;
  /** Its source, from {@link HF_EXTRAS}. */
  source: string;
  /** Live bytes of this kind at the plan's peak. */
  atPeakBytes: number;
  /** The most bytes of this kind live at once. */
  maxBytes: number;
}

/**
 * Watches an allocator and keeps, per extra kind (tensor names with `hf:<kind>`), the live
 * bytes at the allocator's peak and the kind's own maximum.
 */
class ExtrasTracker implements AllocationObserver {
  readonly #live = new Map<string, number>();
  readonly #max = new Map<string, number>();
  #atPeak = new Map<string, number>();
  #peak = -1;

  static #kind(name: string): string | null {
    const i = name.lastIndexOf(HF_MARK);
    return i < 0 ? null : name.slice(i + HF_MARK.length);
  }

  /** Counts an allocation; snapshots the kinds when the allocator reaches a new peak. */
  onAlloc(block: Block<unknown>, allocator: Allocator<unknown>): void {
    const kind = ExtrasTracker.#kind(block.name);
    if (kind) {
      const v = (this.#live.get(kind) ?? 0) + block.bytes;
      this.#live.set(kind, v);
      this.#max.set(kind, Math.max(this.#max.get(kind) ?? 0, v));
    }
    const live = allocator.liveBytes + block.bytes;
    if (live > this.#peak) {
      this.#peak = live;
      this.#atPeak = new Map(this.#live);
    }
  }

  /** Counts a free. */
  onFree(block: Block<unknown>): void {
    const kind = ExtrasTracker.#kind(block.name);
    if (kind) this.#live.set(kind, (this.#live.get(kind) ?? 0) - block.bytes);
  }

  /** The kinds seen, largest at the peak first. */
  report(): ExtraBytes[] {
    return [...this.#max.keys()].map((kind) => ({
      kind,
      source: (HF_EXTRAS as Record<string, HFExtraKind>)[kind]?.source ?? "",
      atPeakBytes: this.#atPeak.get(kind) ?? 0,
      maxBytes: this.#max.get(kind) ?? 0,
    })).sort((a, b) => b.atPeakBytes - a.atPeakBytes || b.maxBytes - a.maxBytes);
  }
}

/** What a plan under the HF profile adds: PyTorch's allocator figures and the extra buffers. */
export interface HFPlanFigures {
  /** `torch.cuda.max_memory_allocated()`: peak bytes of the blocks handed out (512-byte rounded, unsplit remainders included). */
  allocatedPeakBytes: number;
  /** `torch.cuda.max_memory_reserved()`: peak bytes of the segments `cudaMalloc`ed. */
  reservedPeakBytes: number;
  /**
   * `max_memory_reserved − max_memory_allocated`: what the peak reservation holds beyond the
   * peak of blocks (the modelled fragmentation).
   */
  fragmentationBytes: number;
  /** Segments `cudaMalloc`ed. */
  segments: number;
  /** Times the allocator released its cached segments to make room. */
  allocRetries: number;
  /** The extra buffers, per kind: bytes at the peak of live bytes and each kind's maximum. */
  extras: ExtraBytes[];
}

/**
 * Attaches the HF profile's accounting to a device's allocator: PyTorch's caching allocator
 * over `capacity` bytes (it throws `OutOfMemoryError` where `cudaMalloc` would fail) and the
 * extras tracker. Attach before the model is built; `figures()` reads the result.
 */
export function attachHFAccounting(
  allocator: Allocator<unknown>,
  capacity: number,
): { figures(): HFPlanFigures; detach(): void } {
  const cuda = new CachingAllocatorModel(capacity);
  const extras = new ExtrasTracker();
  const off = [cuda.observe(allocator), allocator.observe(extras)];
  return {
    figures() {
      const s = cuda.stats();
      return {
        allocatedPeakBytes: s.peakAllocatedBytes,
        reservedPeakBytes: s.peakReservedBytes,
        fragmentationBytes: s.peakReservedBytes - s.peakAllocatedBytes,
        segments: s.segmentsAllocated,
        allocRetries: s.allocRetries,
        extras: extras.report(),
      };
    },
    detach() {
      off.forEach((f) => f());
    },
  };
}
