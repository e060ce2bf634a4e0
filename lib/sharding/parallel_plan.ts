/**
 * Multi-GPU plans: how one rank of a data-parallel (ZeRO) and Ulysses sequence-parallel run
 * holds its share of a training step. `MemoryPolicy.parallel` carries a {@link ParallelPlan};
 * the model builder and the trainer run that rank's real share on the meta device
 * (`lib/sharding/zero.ts`, `lib/ops/all_to_all.ts`). A plan with one GPU, ZeRO 0, SP 1 and no
 * offload is the single-device step itself ({@link isSingleDevice}).
 *
 * The numbers DeepSpeed uses by default, taken from its sources
 * (`deepspeed/runtime/zero/config.py`, `DeepSpeedZeroConfig`, and the config documentation
 * https://www.deepspeed.ai/docs/config-json/#zero-optimizations-for-fp16-training), are
 * {@link DEEPSPEED_ZERO_DEFAULTS}.
 */

import type { ModelConfig } from "../config/model_config.ts";

/** ZeRO stage: 0 (plain data parallel), 1 (optimizer state), 2 (+ gradients), 3 (+ parameters). */
export type ZeroStage = 0 | 1 | 2 | 3;

/** One rank's share of a multi-GPU step. */
export interface ParallelPlan {
  /** GPUs N (ranks); ZeRO partitions over all N. */
  readonly gpus: number;
  /** ZeRO stage (default 0). */
  readonly zero?: ZeroStage;
  /** Ulysses sequence-parallel degree K (default 1); N must be a multiple of K. */
  readonly sp?: number;
  /** AdamW state (and ZeRO's gradient partitions) on the host: DeepSpeed's `offload_optimizer`. */
  readonly offloadOptimizer?: boolean;
  /** ZeRO-3 parameter partitions on the host: DeepSpeed's `offload_param`. */
  readonly offloadParams?: boolean;
}

/**
 * DeepSpeed's ZeRO defaults (elements, not bytes), from `DeepSpeedZeroConfig`
 * (`deepspeed/runtime/zero/config.py`): `reduce_bucket_size` 5e8, `allgather_bucket_size` 5e8,
 * `stage3_prefetch_bucket_size` 5e7, `stage3_param_persistence_threshold` 1e5,
 * `stage3_max_live_parameters` 1e9; `contiguous_gradients` true (stage 3 then allocates one
 * `reduce_bucket_size` buffer per gradient dtype at start-up, `stage3.py`).
 */
export const DEEPSPEED_ZERO_DEFAULTS: Readonly<{
  reduceBucketSize: number;
  allgatherBucketSize: number;
  prefetchBucketSize: number;
  paramPersistenceThreshold: number;
  maxLiveParameters: number;
}> = Object.freeze({
  reduceBucketSize: 5e8,
  allgatherBucketSize: 5e8,
  prefetchBucketSize: 5e7,
  paramPersistenceThreshold: 1e5,
  maxLiveParameters: 1e9,
});

/**
 * Layers gathered ahead of the one running under ZeRO-3 in these plans: 0, i.e. one decoder
 * layer's parameters are all-gathered at a time (released after its forward, gathered again
 * for its backward). DeepSpeed fetches per module with a 5e7-element prefetch bucket, which
 * for a Llama-8B layer (218M parameters) holds less than one layer: one whole layer bounds it.
 */
export const ZERO3_PREFETCH_LAYERS = 0;

/** The parallel settings with defaults filled in. */
export function normalizeParallel(p: ParallelPlan): Required<ParallelPlan> {
  return {
    gpus: p.gpus,
    zero: p.zero ?? 0,
    sp: p.sp ?? 1,
    offloadOptimizer: p.offloadOptimizer ?? false,
    offloadParams: p.offloadParams ?? false,
  };
}

/** True when the plan is one device with nothing sharded or offloaded: today's single step. */
export function isSingleDevice(p: ParallelPlan | undefined): boolean {
  if (!p) return true;
  const n = normalizeParallel(p);
  return n.gpus === 1 && n.zero === 0 && n.sp === 1 && !n.offloadOptimizer && !n.offloadParams;
}

/** `"8 GPUs, ZeRO-3, SP 8, optimizer on host"`-style name (empty for a single device). */
export function describeParallel(p: ParallelPlan | undefined): string {
  if (!p || isSingleDevice(p)) return "";
  const n = normalizeParallel(p);
  const parts = [`${n.gpus} GPU${n.gpus === 1 ? "" : "s"}`];
  if (n.zero > 0) parts.push(`ZeRO-${n.zero}`);
  if (n.sp > 1) parts.push(`SP ${n.sp}`);
  if (n.offloadOptimizer) parts.push("optimizer on host");
  if (n.offloadParams) parts.push("parameters on host");
  return parts.join(", ");
}

/**
 * Throws a clear error for an impossible plan: N, K not positive integers; N not a multiple of
 * K; a ZeRO stage outside 0–3; K not dividing the query heads; K and the KV heads not dividing
 * one another (DeepSpeed's rule: K ≤ KV must divide KV; K > KV must be a multiple of KV, and
 * each KV head is then replicated K/KV times, as `UlyssesSPAttentionHF` does); optimizer offload
 * without ZeRO; parameter offload without ZeRO-3. With `cfg`, the head checks run too.
 */
export function validateParallel(p: ParallelPlan, cfg?: ModelConfig): void {
  const keys = ["gpus", "zero", "sp", "offloadOptimizer", "offloadParams"];
  for (const k of Object.keys(p)) {
    if (!keys.includes(k)) {
      throw new Error(`parallel plan: unknown field "${k}"; fields are ${keys.join(", ")}`);
    }
  }
  const n = normalizeParallel(p);
  if (!Number.isInteger(n.gpus) || n.gpus < 1) {
    throw new Error(`--gpus must be a positive integer, got ${JSON.stringify(p.gpus)}`);
  }
  if (!Number.isInteger(n.sp) || n.sp < 1) {
    throw new Error(`--sp must be a positive integer, got ${JSON.stringify(p.sp)}`);
  }
  if (![0, 1, 2, 3].includes(n.zero)) {
    throw new Error(`--zero must be 0, 1, 2 or 3, got ${JSON.stringify(p.zero)}`);
  }
  if (n.gpus < n.sp || n.gpus % n.sp !== 0) {
    throw new Error(
      `--sp ${n.sp} needs a GPU count that is a multiple of it (got --gpus ${n.gpus}); ` +
        `use --gpus ${n.sp * Math.max(1, Math.ceil(n.gpus / n.sp))} or a smaller --sp`,
    );
  }
  if (n.offloadOptimizer && n.zero === 0) {
    throw new Error(
      "--offload-optimizer needs ZeRO (DeepSpeed offloads the optimizer from stage 1 on): add --zero 1, 2 or 3",
    );
  }
  if (n.offloadParams && n.zero !== 3) {
    throw new Error("--offload-params needs --zero 3 (only stage 3 partitions parameters)");
  }
  if (cfg && n.sp > 1) {
    if (cfg.heads % n.sp !== 0) {
      throw new Error(
        `--sp ${n.sp} must divide ${cfg.name}'s ${cfg.heads} attention heads (Ulysses gives each ` +
          `rank heads/K whole heads); use a divisor of ${cfg.heads}`,
      );
    }
    if (cfg.kvHeads % n.sp !== 0 && n.sp % cfg.kvHeads !== 0) {
      throw new Error(
        `--sp ${n.sp} and ${cfg.name}'s ${cfg.kvHeads} KV heads must divide one another ` +
          `(K ≤ KV: K divides KV; K > KV: each KV head is replicated K/KV times, as DeepSpeed does)`,
      );
    }
  }
}
