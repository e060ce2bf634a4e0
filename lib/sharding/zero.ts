/**
 * ZeRO on a planned rank (meta device only): what one of N data-parallel ranks holds, following
 * DeepSpeed's stages (`deepspeed/runtime/zero/stage_1_and_2.py`, `stage3.py`):
 *
 * - stage ≥ 1: AdamW's two moments are partitioned, 1/N of every parameter (⌈numel/N⌉ each),
 *   allocated at start-up (DeepSpeed's `initialize_optimizer_states`); the update runs on the
 *   rank's partition (the meta device computes nothing, so no kernel is dispatched for it);
 * - stage ≥ 2: gradients too: a parameter's full gradient lives until its layer's backward has
 *   finished, then goes through the reduce bucket (`reduce_bucket_size` elements, one buffer
 *   allocated at start-up since `contiguous_gradients` is on by default; tag `comm`) into the
 *   rank's gradient partition (a flat buffer of 1/N, tag `grads`) and is freed;
 * - stage 3: parameters too: every parameter of at least `stage3_param_persistence_threshold`
 *   (1e5) elements keeps only its 1/N partition resident (tag `weights`); a decoder layer's
 *   parameters are all-gathered (tag `gathered`) before its forward and again before its
 *   backward (which recomputes it under activation recomputation) and released after, one layer
 *   at a time (prefetch depth {@link ZERO3_PREFETCH_LAYERS}); the embedding and the LM head are
 *   gathered around their own use;
 * - stages 0 and 1 with N > 1 all-reduce the full gradients before the step in buckets of
 *   `reduce_bucket_size` elements (a transient `comm` buffer of min(bucket, parameters)).
 *
 * `offloadOptimizer` keeps the moments and the gradient partitions on the host (DeepSpeed's
 * `offload_optimizer`, where CPU Adam updates them), `offloadParams` the parameter partitions
 * (`offload_param`). Host bytes are counted under the allocator's `host` tag, outside the
 * device's peak and budget ({@link ZeroRank.hostBytes} is this rank's share of them). Every byte is counted in the device's float counting (a bf16 plan counts the
 * moments in bf16, as this workbench trains; DeepSpeed keeps fp32 master weights and moments,
 * which the ALST setups all keep on the host).
 */

import type { HostBlock } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import type { Forward, SeqLayer } from "../nn/layer.ts";
import type { Parameter } from "../nn/parameter.ts";
import {
  DEEPSPEED_ZERO_DEFAULTS,
  type ParallelPlan,
  ZERO3_PREFETCH_LAYERS,
} from "./parallel_plan.ts";

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** True when ZeRO-3 keeps only a partition of a parameter of this shape resident. */
export function isPartitioned(plan: Required<ParallelPlan>, shape: readonly number[]): boolean {
  return plan.zero === 3 && numel(shape) >= DEEPSPEED_ZERO_DEFAULTS.paramPersistenceThreshold;
}

/**
 * Bytes one rank keeps on the host for parameters of these shapes: the moments (and, stage ≥ 2,
 * the gradient partitions) with `offloadOptimizer`, the stage-3 parameter partitions with
 * `offloadParams`; `elem` bytes per element.
 */
export function zeroHostBytes(
  shapes: readonly (readonly number[])[],
  plan: Required<ParallelPlan>,
  elem: number,
): number {
  const part = (s: readonly number[]) => Math.ceil(numel(s) / plan.gpus);
  const all = shapes.reduce((a, s) => a + part(s), 0);
  let elements = 0;
  if (plan.offloadOptimizer && plan.zero >= 1) elements += 2 * all;
  if (plan.offloadOptimizer && plan.zero >= 2) elements += all;
  if (plan.offloadParams && plan.zero === 3) {
    elements += shapes.filter((s) => isPartitioned(plan, s)).reduce((a, s) => a + part(s), 0);
  }
  return elements * elem;
}

/** One rank's ZeRO state for a model's parameters. */
export class ZeroRank {
  /** Bytes this rank keeps on the host (outside the device budget). */
  readonly hostBytes: number;
  /** Elements of this rank's partition of every parameter (Σ ⌈numel/N⌉). */
  readonly partitionElements: number;
  /** Prefetch depth of the ZeRO-3 gathers, in layers. */
  readonly prefetchLayers: number = ZERO3_PREFETCH_LAYERS;
  readonly #persistent: Tensor[] = [];
  readonly #host: HostBlock[] = [];
  readonly #gathers = new Map<Parameter, number>();
  readonly #elem: number;

  /**
   * Allocates the rank's persistent state: parameter partitions (stage 3), gradient
   * partitions and the reduce bucket (stage ≥ 2), AdamW moments (stage ≥ 1), on the device or
   * (offload) counted on the host.
   */
  constructor(
    readonly dev: Device,
    readonly params: readonly Parameter[],
    readonly plan: Required<ParallelPlan>,
  ) {
    if (dev.kind !== "meta") {
      throw new Error(
        "ZeRO: a rank's share of a multi-GPU step runs on the meta device only " +
          "(plan it with `deno task plan … --gpus N --zero Z`)",
      );
    }
    this.#elem = dev.floats === "f32" ? 4 : 2;
    const N = plan.gpus;
    const part = (p: Parameter) => Math.ceil(numel(p.shape) / N);
    this.partitionElements = params.reduce((a, p) => a + part(p), 0);
    let host = 0;
    const hold = (
      elements: number,
      tag: "weights" | "grads" | "optimizer",
      name: string,
      onHost: boolean,
    ) => {
      if (elements === 0) return;
      if (onHost) {
        host += elements * this.#elem;
        this.#host.push(dev.allocator.allocHost(elements * this.#elem, name));
      } else this.#persistent.push(dev.tensor([elements], { tag, name }));
    };
    if (plan.zero === 3) {
      const shards = params.filter((p) => !p.resident).reduce((a, p) => a + part(p), 0);
      hold(shards, "weights", "zero3.param_partition", plan.offloadParams);
    }
    if (plan.zero >= 2) {
      hold(this.partitionElements, "grads", "zero.grad_partition", plan.offloadOptimizer);
      const total = params.reduce((a, p) => a + numel(p.shape), 0);
      this.#persistent.push(
        dev.tensor([Math.min(DEEPSPEED_ZERO_DEFAULTS.reduceBucketSize, total)], {
          tag: "comm",
          name: "zero.reduce_bucket",
        }),
      );
    }
    if (plan.zero >= 1) {
      hold(this.partitionElements, "optimizer", "zero.exp_avg", plan.offloadOptimizer);
      hold(this.partitionElements, "optimizer", "zero.exp_avg_sq", plan.offloadOptimizer);
    }
    this.hostBytes = host;
  }

  /** All-gathers the partitioned parameters among `ps` (tag `gathered`); counted per caller. */
  gather(ps: readonly Parameter[]): void {
    for (const p of ps) {
      const n = this.#gathers.get(p);
      if (n !== undefined) {
        this.#gathers.set(p, n + 1);
      } else if (!p.resident) {
        p.setValue(this.dev.tensor(p.shape, { tag: "gathered", name: `${p.name}.gathered` }));
        this.#gathers.set(p, 1);
      }
    }
  }

  /** Releases a {@link gather}: the full weight is freed when its last gatherer releases it. */
  release(ps: readonly Parameter[]): void {
    for (const p of ps) {
      const n = this.#gathers.get(p);
      if (n === undefined) continue;
      if (n > 1) this.#gathers.set(p, n - 1);
      else {
        this.#gathers.delete(p);
        p.setValue(null);
      }
    }
  }

  /**
   * A parameter's gradient is complete for this micro-batch: from stage 2 on it is reduced
   * into the rank's partition through the bucket and freed.
   */
  gradReady(p: Parameter): void {
    if (this.plan.zero >= 2) p.dropGrad();
  }

  /**
   * Before the optimizer: stages 0–1 with N > 1 all-reduce the full gradients in buckets
   * (a transient `comm` buffer).
   */
  reduceGradients(params: readonly Parameter[]): void {
    if (this.plan.zero >= 2 || this.plan.gpus === 1) return;
    const total = params.filter((p) => p.grad).reduce((a, p) => a + numel(p.shape), 0);
    if (total === 0) return;
    const bucket = this.dev.tensor(
      [Math.min(DEEPSPEED_ZERO_DEFAULTS.reduceBucketSize, total)],
      { tag: "comm", name: "dp.allreduce_bucket" },
    );
    bucket.dispose();
  }

  /**
   * The sharded optimizer step (stage ≥ 1): the rank updates its partition with the moments
   * allocated at start-up, then every full gradient still held is freed.
   */
  step(params: readonly Parameter[]): void {
    this.reduceGradients(params);
    for (const p of params) p.dropGrad();
  }

  /** Frees the persistent state (and any gathered weight). */
  dispose(): void {
    for (const p of [...this.#gathers.keys()]) p.setValue(null);
    this.#gathers.clear();
    for (const t of this.#persistent) t.dispose();
    this.#persistent.length = 0;
    for (const b of this.#host) this.dev.allocator.freeHost(b);
    this.#host.length = 0;
  }
}

/** A layer whose parameters are all-gathered around its forward and its backward (ZeRO-3). */
export class ZeroGathered<S> implements SeqLayer<S> {
  readonly name: string;
  readonly rowWise: boolean;
  /**
   * Wraps `inner` so its parameters are gathered around each of its passes.
   * @param zero The rank's ZeRO state.
   * @param inner The layer (e.g. a checkpointed decoder block).
   * @param params The parameters `inner` uses.
   */
  constructor(
    readonly zero: ZeroRank,
    readonly inner: SeqLayer<S>,
    readonly params: readonly Parameter[],
  ) {
    this.name = `zero3(${inner.name})`;
    this.rowWise = inner.rowWise;
  }

  forward(x: Tensor): Forward<S> {
    this.zero.gather(this.params);
    try {
      return this.inner.forward(x);
    } finally {
      this.zero.release(this.params);
    }
  }

  backward(dy: Tensor, saved: S): Tensor {
    this.zero.gather(this.params);
    try {
      return this.inner.backward(dy, saved);
    } finally {
      this.zero.release(this.params);
    }
  }
}
