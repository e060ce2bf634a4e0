/**
 * Data parallelism with ZeRO, planned as one rank's real share of the step on the meta device
 * (`lib/sharding/zero.ts`): stage 1 partitions the AdamW state over the N ranks, stage 2 also
 * the gradients, stage 3 also the parameters (gathered one decoder layer at a time), with
 * DeepSpeed's buffers and optional host offload of the optimizer state or the parameters.
 * Policy field `parallel` (shared with Ulysses, which owns its `sp`); flags `--gpus N`,
 * `--zero 0|1|2|3`, `--offload-optimizer`, `--offload-params`.
 */

import {
  DEEPSPEED_ZERO_DEFAULTS,
  describeParallel,
  isSingleDevice,
  normalizeParallel,
  type ParallelPlan,
  validateParallel,
  type ZeroStage,
} from "../sharding/parallel_plan.ts";
import { isPartitioned, ZeroGathered, ZeroRank } from "../sharding/zero.ts";
import { parsePositiveInt } from "../util/flag_values.ts";
import type { Technique } from "./technique.ts";

/** The parallel flags' names, Ulysses' `sp` included: any of them makes a plan. */
const PARALLEL_FLAGS = ["gpus", "zero", "sp", "offload-optimizer", "offload-params"];

/** One rank of N data-parallel GPUs with a ZeRO stage. */
export const ZERO: Technique = {
  name: "ZeRO",
  about: "one rank of N data-parallel GPUs: optimizer state, gradients, parameters sharded 1/N",
  fields: ["parallel"],
  enabled: (policy) => !isSingleDevice(policy.parallel),
  validate(policy, floats) {
    if (policy.parallel === undefined) return;
    validateParallel(policy.parallel);
    const parallel = normalizeParallel(policy.parallel);
    if (!isSingleDevice(policy.parallel) && policy.framework === "hf") {
      throw new Error(
        `memory policy: framework "hf" (--framework hf) profiles one GPU running transformers + ` +
          `PyTorch, and a multi-GPU plan (--gpus/--zero/--sp: ${
            describeParallel(policy.parallel)
          }) ` +
          `runs this workbench's layers as DeepSpeed shards them; use --framework ours with the ` +
          `parallel flags, or drop them for the HF profile`,
      );
    }
    const f16 = policy.dtype === "f16" || floats === "f16";
    if (f16 && parallel.zero > 0) {
      throw new Error(
        `memory policy: mixed precision (--dtype f16) with ZeRO stage ${parallel.zero} ` +
          `(--zero ${parallel.zero}): these plans do not partition the f32 master weights or ` +
          `the loss scaler's overflow check across ranks; plan ZeRO in bf16 (--dtype bf16) or ` +
          `use --zero 0 with f16`,
      );
    }
  },
  describe(policy, name) {
    name.tags.push(describeParallel(policy.parallel));
  },
  build: {
    configure(m) {
      const parallel = normalizeParallel(m.policy.parallel!);
      validateParallel(parallel, m.cfg);
      if (m.dev.kind !== "meta") {
        throw new Error(
          `a multi-GPU rank (${parallel.gpus} GPUs) is planned on the meta device only; ` +
            "use `deno task plan … --gpus N`",
        );
      }
      m.settings.parallel = parallel;
      m.settings.partitioned = (shape) => isPartitioned(parallel, shape);
    },
    afterBlocks(m) {
      const parallel = m.settings.parallel!;
      const zero = new ZeroRank(m.dev, m.params, parallel);
      m.zero = zero;
      if (parallel.zero === 3) {
        m.blocks.forEach((b, i) => m.blocks[i] = new ZeroGathered(zero, b, m.blockParams[i]));
      }
    },
  },
  flags: {
    options: {
      gpus: { type: "string" },
      zero: { type: "string" },
      "offload-optimizer": { type: "boolean" },
      "offload-params": { type: "boolean" },
    },
    help: `  --gpus N        plan one rank of N GPUs (its real share of the step on the meta device)
  --zero 0|1|2|3  ZeRO stage: shard AdamW state (1), + gradients (2), + parameters (3) 1/N
  --offload-optimizer  AdamW state (and ZeRO's gradient partitions) on the host (needs --zero)
  --offload-params     ZeRO-3 parameter partitions on the host (needs --zero 3)`,
    apply(values, policy) {
      if (!PARALLEL_FLAGS.some((f) => values[f] !== undefined && values[f] !== false)) {
        return policy;
      }
      const flag = values.zero as string | undefined;
      const zero = flag === undefined ? 0 : Number(flag);
      if (![0, 1, 2, 3].includes(zero) || flag?.trim() === "") {
        throw new Error(`--zero must be 0, 1, 2 or 3, got "${flag}"`);
      }
      const parallel: ParallelPlan = {
        gpus: parsePositiveInt("--gpus", values.gpus as string | undefined, 1),
        zero: zero as ZeroStage,
        sp: policy.parallel?.sp ?? 1,
        offloadOptimizer: (values["offload-optimizer"] as boolean | undefined) ?? false,
        offloadParams: (values["offload-params"] as boolean | undefined) ?? false,
      };
      return { ...policy, parallel };
    },
  },
  deepspeed(policy, draft) {
    const p = normalizeParallel(policy.parallel ?? { gpus: 1 });
    const zero: Record<string, unknown> = {
      stage: p.zero,
      // DeepSpeed's defaults, written out so the plan's assumptions are visible
      reduce_bucket_size: DEEPSPEED_ZERO_DEFAULTS.reduceBucketSize,
      allgather_bucket_size: DEEPSPEED_ZERO_DEFAULTS.allgatherBucketSize,
      contiguous_gradients: true,
    };
    if (p.zero === 3) {
      zero.stage3_prefetch_bucket_size = DEEPSPEED_ZERO_DEFAULTS.prefetchBucketSize;
      zero.stage3_param_persistence_threshold = DEEPSPEED_ZERO_DEFAULTS.paramPersistenceThreshold;
      zero.stage3_max_live_parameters = DEEPSPEED_ZERO_DEFAULTS.maxLiveParameters;
    }
    if (p.offloadOptimizer) zero.offload_optimizer = { device: "cpu", pin_memory: true };
    if (p.offloadParams) zero.offload_param = { device: "cpu", pin_memory: true };
    draft.config.train_batch_size = p.gpus / p.sp;
    draft.config.zero_optimization = zero;
    return undefined;
  },
};
