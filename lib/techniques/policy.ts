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
import { accountingProfile, FRAMEWORKS } from "../profiles/registry.ts";
import type { MemoryPolicy } from "./memory_policy.ts";
import { checkDeviceFloats } from "./mixed_precision.ts";
import { TECHNIQUES } from "./registry.ts";
import type { PolicyNameParts, Technique, TrainSettings } from "./technique.ts";

export type { MemoryPolicy, MstParts, PartChunks } from "./memory_policy.ts";
export { partChunks } from "./mst_mlp.ts";

/**
 * The object frozen, and its lookups checked: reading a name it does not have (`POLICIES["mts"]`,
 * a cast string) throws an error listing the names, instead of giving `undefined` that fails
 * later far away. Introspection (`toJSON`, symbols, `then`, Object.prototype's names) reads as
 * usual.
 */
function checkedNames<T extends Record<string, unknown>>(what: string, obj: T): Readonly<T> {
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
  const name: PolicyNameParts = { steps: [], tags: [] };
  for (const t of TECHNIQUES) if (t.enabled(policy)) t.describe?.(policy, name);
  return (name.steps.length ? name.steps.join(" + ") : "standard") +
    accountingProfile(policy.framework).nameSuffix + name.tags.map((t) => ` [${t}]`).join("");
}

/** The policy fields, each owned by a technique (`framework`: by the profiles). */
const FIELDS = ["framework", ...new Set(TECHNIQUES.flatMap((t) => t.fields))];

/**
 * Throws a clear error for a malformed policy (unknown key, bad M, bad framework, offload
 * without checkpoint, a bad parallel plan) or one this build cannot run (a dtype the device
 * does not count; f16 with framework "hf", optimizer-in-backward or ZeRO ≥ 1; framework "hf" or
 * optimizer-in-backward with a multi-GPU plan), naming the fields and the accepted values.
 * Each technique checks its own fields and refusals, in declared order.
 */
export function validatePolicy(policy: MemoryPolicy, deviceFloats?: FloatCounting): void {
  for (const k of Object.keys(policy)) {
    if (k === "head") {
      throw new Error(
        `memory policy: "head" was folded into "framework": use framework: "hf" for ` +
          `transformers' head (and the rest of its allocations), or leave it unset`,
      );
    }
    if (!FIELDS.includes(k)) {
      throw new Error(`memory policy: unknown field "${k}"; fields are ${FIELDS.join(", ")}`);
    }
  }
  if (policy.framework !== undefined && !FRAMEWORKS.includes(policy.framework)) {
    throw new Error(
      `memory policy: framework must be one of ${FRAMEWORKS.join(", ")}, got ${
        JSON.stringify(policy.framework)
      }`,
    );
  }
  for (const t of TECHNIQUES) t.validate?.(policy, deviceFloats);
  checkDeviceFloats(policy, deviceFloats);
}

/** The techniques a policy turns on, in declared order (`floats`: the device's counting). */
export function activeTechniques(policy: MemoryPolicy, floats?: FloatCounting): Technique[] {
  return TECHNIQUES.filter((t) => t.enabled(policy, floats));
}

/** What the trainer does under a policy. */
export function trainSettings(policy: MemoryPolicy): TrainSettings {
  const settings: TrainSettings = { optimizerInBackward: false };
  for (const t of activeTechniques(policy)) t.train?.(policy, settings);
  return settings;
}
