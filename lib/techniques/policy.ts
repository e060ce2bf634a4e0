/**
 * The memory policy: how a training step is run, the only such type. The model builder,
 * the trainer, the step driver, the planner, the CLI flags, the bench and the experiments
 * all take a {@link MemoryPolicy}, and {@link describePolicy} names it the same way
 * everywhere (command-line output, plans, experiment labels and records).
 *
 * Every field is optional; `{}` is standard training (no recomputation, unchunked MLP and
 * head, AdamW after backward, this workbench's own allocations). The named {@link POLICIES}
 * are the ones the paper compares.
 */

import type { FloatCounting } from "../device/dtype.ts";
import type { Chunks } from "../mst/chunking.ts";
import {
  describeParallel,
  isSingleDevice,
  normalizeParallel,
  type ParallelPlan,
  validateParallel,
} from "../sharding/parallel_plan.ts";
import { type Framework, FRAMEWORKS } from "../profiles/hf/extras.ts";

/** M for one part: a number of mini-sequences, `"auto"` (see `lib/mst/chunking.ts`), or off. */
export type PartChunks = Chunks | "off";

/** Mini-sequence settings per part; an absent part is `"off"`. */
export interface MstParts {
  /** M for the MLP of every decoder block. */
  readonly mlp?: PartChunks;
  /** M for the LM head and its loss (the (S, V) logits become (S/M, V) chunks). */
  readonly head?: PartChunks;
}

/** How a training step is run. */
export interface MemoryPolicy {
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
   * parameter offload; see `parallel.ts`), planned on the meta device only. Absent or a single
   * device with nothing sharded: the ordinary step.
   */
  readonly parallel?: ParallelPlan;
}

const KEYS = [
  "checkpoint",
  "mst",
  "optimizerInBackward",
  "framework",
  "offload",
  "dtype",
  "parallel",
  "keepAttention",
];

/**
 * The object frozen, and its lookups checked: reading a name it does not have (`POLICIES["mts"]`,
 * a cast string) throws an error listing the names, instead of giving `undefined` that fails
 * later far away. Introspection (`toJSON`, symbols, `then`, Object.prototype's names) reads as
 * usual.
 */
export function checkedNames<T extends Record<string, unknown>>(what: string, obj: T): Readonly<T> {
  const frozen = Object.freeze({ ...obj });
  const passthrough = new Set(["toJSON", "then", "constructor", "inspect", "asymmetricMatch"]);
  return new Proxy(frozen, {
    get(target, key, receiver) {
      if (
        typeof key === "string" && !Object.hasOwn(target, key) && !passthrough.has(key) &&
        !(key in Object.prototype)
      ) {
        throw new Error(
          `${what}: no entry named ${JSON.stringify(key)}; the names are ${
            Object.keys(target).join(", ")
          }`,
        );
      }
      return Reflect.get(target, key, receiver);
    },
  });
}

/** The named policy `name` (one of {@link POLICIES}); an unknown name is an error listing them. */
export function policyByName(name: string): MemoryPolicy {
  return (POLICIES as Record<string, MemoryPolicy>)[name];
}

const freeze = (p: MemoryPolicy): MemoryPolicy =>
  Object.freeze({ ...p, ...(p.mst ? { mst: Object.freeze({ ...p.mst }) } : {}) });

/**
 * The named policies, shared by the tasks, the bench and the experiments (frozen):
 * - `standard`: plain training;
 * - `checkpoint`: activation recomputation;
 * - `mst`: MsT (MLP and head, M auto) + recomputation, the paper's MsT;
 * - `mstOib`: `mst` + optimizer-in-backward (the paper's 60K setting);
 * - `mstOffload`: `mst` + checkpoint offload (block inputs kept in host memory);
 * - `mstKeepAttention`: `mst` with selective recomputation (attention output kept);
 * - `hfStandard`, `hfCheckpoint`: standard and recomputation as transformers + PyTorch run
 *   them (`framework: "hf"`), the paper's baselines.
 */
export const POLICIES: Readonly<{
  standard: MemoryPolicy;
  checkpoint: MemoryPolicy;
  mst: MemoryPolicy;
  mstOib: MemoryPolicy;
  mstOffload: MemoryPolicy;
  mstKeepAttention: MemoryPolicy;
  hfStandard: MemoryPolicy;
  hfCheckpoint: MemoryPolicy;
}> = checkedNames("POLICIES", {
  standard: freeze({}),
  checkpoint: freeze({ checkpoint: true }),
  mst: freeze({ checkpoint: true, mst: { mlp: "auto", head: "auto" } }),
  mstOib: freeze({
    checkpoint: true,
    mst: { mlp: "auto", head: "auto" },
    optimizerInBackward: true,
  }),
  mstOffload: freeze({ checkpoint: true, mst: { mlp: "auto", head: "auto" }, offload: true }),
  mstKeepAttention: freeze({
    checkpoint: true,
    mst: { mlp: "auto", head: "auto" },
    keepAttention: true,
  }),
  hfStandard: freeze({ framework: "hf" }),
  hfCheckpoint: freeze({ framework: "hf", checkpoint: true }),
});

/** Name of one of the {@link POLICIES}. */
export type PolicyName = keyof typeof POLICIES;

/** The MsT setting of a part (`"off"` when absent). */
export function partChunks(policy: MemoryPolicy, part: "mlp" | "head"): PartChunks {
  return policy.mst?.[part] ?? "off";
}

/**
 * A short name, the same everywhere: `"standard"`, `"recomputation"`,
 * `"MsT + recomputation"` (both parts auto), `"MsT(mlp=4, head=off)"`,
 * `"MsT + recomputation + optimizer-in-backward"`, `"MsT + recomputation + checkpoint offload"`,
 * `"standard (HF)"`, …
 *
 * @example
 * ```ts
 * import { describePolicy, POLICIES } from "../../mod.ts";
 *
 * console.log(describePolicy(POLICIES.mstOib)); // "MsT + recomputation + optimizer-in-backward"
 * console.log(describePolicy({ mst: { head: 8 } })); // "MsT(mlp=off, head=8)"
 * ```
 */
export function describePolicy(policy: MemoryPolicy): string {
  const mlp = partChunks(policy, "mlp");
  const head = partChunks(policy, "head");
  const parts: string[] = [];
  if (mlp !== "off" || head !== "off") {
    parts.push(mlp === "auto" && head === "auto" ? "MsT" : `MsT(mlp=${mlp}, head=${head})`);
  }
  if (policy.checkpoint) {
    parts.push(policy.keepAttention ? "recomputation (attention kept)" : "recomputation");
  }
  if (policy.optimizerInBackward) parts.push("optimizer-in-backward");
  if (policy.offload) parts.push("checkpoint offload");
  let name = parts.length ? parts.join(" + ") : "standard";
  if (policy.framework === "hf") name += " (HF)";
  if (policy.dtype) name += ` [${policy.dtype}]`;
  const parallel = describeParallel(policy.parallel);
  if (parallel) name += ` [${parallel}]`;
  return name;
}

/**
 * Throws a clear error for a malformed policy (unknown key, bad M, bad framework, offload
 * without checkpoint, a bad parallel plan) or one this build cannot run (a dtype the device
 * does not count; f16 with framework "hf", optimizer-in-backward or ZeRO ≥ 1; framework "hf" or
 * optimizer-in-backward with a multi-GPU plan), naming the fields and the accepted values.
 */
export function validatePolicy(policy: MemoryPolicy, deviceFloats?: FloatCounting): void {
  for (const k of Object.keys(policy)) {
    if (k === "head") {
      throw new Error(
        `memory policy: "head" was folded into "framework": use framework: "hf" for ` +
          `transformers' head (and the rest of its allocations), or leave it unset`,
      );
    }
    if (!KEYS.includes(k)) {
      throw new Error(`memory policy: unknown field "${k}"; fields are ${KEYS.join(", ")}`);
    }
  }
  for (const k of Object.keys(policy.mst ?? {})) {
    if (k !== "mlp" && k !== "head") {
      throw new Error(`memory policy: unknown mst part "${k}"; parts are mlp and head`);
    }
  }
  for (const part of ["mlp", "head"] as const) {
    const m = partChunks(policy, part);
    if (m !== "off" && m !== "auto" && !(Number.isInteger(m) && m >= 1)) {
      throw new Error(
        `memory policy: mst.${part} must be a positive integer, "auto" or "off", got ${
          JSON.stringify(m)
        }`,
      );
    }
  }
  if (policy.framework !== undefined && !FRAMEWORKS.includes(policy.framework)) {
    throw new Error(
      `memory policy: framework must be one of ${FRAMEWORKS.join(", ")}, got ${
        JSON.stringify(policy.framework)
      }`,
    );
  }
  if (policy.offload !== undefined && typeof policy.offload !== "boolean") {
    throw new Error(
      `memory policy: offload must be true or false, got ${JSON.stringify(policy.offload)}`,
    );
  }
  if (policy.offload && !policy.checkpoint) {
    throw new Error(
      "memory policy: offload moves the block checkpoints to the host, but checkpoint " +
        "(recomputation) is off, so there are none; set checkpoint: true (--checkpoint) with " +
        "offload: true (--offload-checkpoints), or leave offload unset",
    );
  }
  if (policy.keepAttention !== undefined && typeof policy.keepAttention !== "boolean") {
    throw new Error(
      `memory policy: keepAttention must be true or false, got ${
        JSON.stringify(policy.keepAttention)
      }`,
    );
  }
  if (policy.keepAttention && !policy.checkpoint) {
    throw new Error(
      "memory policy: keepAttention keeps the attention output through recomputation, but " +
        "checkpoint (recomputation) is off; set checkpoint: true (--checkpoint) with " +
        "keepAttention: true (--keep-attention), or leave keepAttention unset",
    );
  }
  if (policy.keepAttention && policy.framework === "hf") {
    throw new Error(
      `memory policy: keepAttention with framework "hf": transformers' gradient checkpointing ` +
        `recomputes whole layers and has no selective mode; use framework "ours" for selective ` +
        `recomputation, or drop keepAttention for the HF profile`,
    );
  }
  if (policy.keepAttention && policy.offload) {
    throw new Error(
      "memory policy: keepAttention with offload: checkpoint offload moves only the block " +
        "inputs to the host, and the kept attention outputs would stay on the device unnoticed; " +
        "choose one of --keep-attention and --offload-checkpoints",
    );
  }
  const f16 = policy.dtype === "f16" || deviceFloats === "f16";
  if (f16 && policy.framework === "hf") {
    throw new Error(
      `memory policy: framework "hf" (what transformers + PyTorch allocate in bf16 training) is a ` +
        `planning profile and does not run in mixed precision (f16); use framework "ours" or ` +
        `--dtype bf16 on the meta device`,
    );
  }
  if (f16 && policy.optimizerInBackward) {
    throw new Error(
      `memory policy: optimizerInBackward cannot run in mixed precision (f16): dynamic loss ` +
        `scaling must see every gradient before any update to skip an overflowing step; drop ` +
        `optimizer-in-backward or use f32`,
    );
  }
  if (policy.parallel !== undefined) {
    validateParallel(policy.parallel);
    const parallel = normalizeParallel(policy.parallel);
    if (policy.optimizerInBackward && parallel.zero > 0) {
      throw new Error(
        "memory policy: optimizer-in-backward does not combine with ZeRO (DeepSpeed steps the " +
          "sharded optimizer after backward); drop --optimizer-in-backward or use --zero 0",
      );
    }
    if (!isSingleDevice(policy.parallel) && policy.optimizerInBackward) {
      throw new Error(
        "memory policy: optimizer-in-backward is planned on one device only; drop it for a multi-GPU plan",
      );
    }
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
    if (f16 && parallel.zero > 0) {
      throw new Error(
        `memory policy: mixed precision (--dtype f16) with ZeRO stage ${parallel.zero} ` +
          `(--zero ${parallel.zero}): these plans do not partition the f32 master weights or the ` +
          `loss scaler's overflow check across ranks; plan ZeRO in bf16 (--dtype bf16) or use ` +
          `--zero 0 with f16`,
      );
    }
  }
  if (policy.dtype !== undefined && deviceFloats !== undefined && policy.dtype !== deviceFloats) {
    throw new Error(
      `memory policy: dtype ${policy.dtype}, but the device counts floats as ${deviceFloats}; ` +
        `use a device with that float counting (e.g. new MetaDevice({ floats: "${policy.dtype}" }) ` +
        `or --dtype ${policy.dtype} on the meta device), or leave dtype unset`,
    );
  }
}
