/** Resolving a model config and memory policy from task flags (the one flag → policy parser). */

import { resolveConfig } from "../config/resolve.ts";
import type { ModelConfig } from "../config/model_config.ts";
import {
  type MemoryPolicy,
  POLICIES,
  type PolicyName,
  validatePolicy,
} from "../techniques/policy.ts";
import { TECHNIQUES } from "../techniques/registry.ts";
import { ULYSSES } from "../techniques/ulysses.ts";
import { ZERO } from "../techniques/zero.ts";
import { type Framework, parseFramework } from "../profiles/registry.ts";

/** `--framework NAME`, or `--hf-head` (its old name for `--framework hf`); undefined when neither. */
function parseFrameworkFlags(flags: ModelFlags): Framework | undefined {
  const named = flags.framework === undefined ? undefined : parseFramework(flags.framework);
  if (flags["hf-head"]) {
    if (named === "ours") {
      throw new Error(
        "--hf-head is the old name of --framework hf; it contradicts --framework ours: give one",
      );
    }
    return "hf";
  }
  return named;
}

/** Model-related flags as parsed by `parseTaskArgs`. */
export interface ModelFlags {
  config?: string;
  set?: string[];
  policy?: string;
  mst?: string;
  "mst-mlp"?: string;
  "mst-head"?: string;
  checkpoint?: boolean;
  "optimizer-in-backward"?: boolean;
  framework?: string;
  "hf-head"?: boolean;
  "offload-checkpoints"?: boolean;
  "keep-attention"?: boolean;
  lora?: string;
  "base-dtype"?: string;
}

/** The resolved model setup of a task. */
export interface ModelSetup {
  cfg: ModelConfig;
  policy: MemoryPolicy;
}

/** Preset + `--config` YAML + `--set` overrides, and the memory policy of the flags. */
export async function modelSetup(
  preset: string | undefined,
  flags: ModelFlags,
  saved?: ModelConfig,
): Promise<ModelSetup> {
  if (saved) {
    if ((preset && preset !== saved.name) || flags.config || flags.set?.length) {
      throw new Error(
        `--resume continues the saved run's model (${saved.name}): drop the preset, --config ` +
          `and --set`,
      );
    }
    return { policy: parsePolicy(flags), cfg: saved };
  }
  if (!preset) throw new Error("missing preset name (e.g. llama3-tiny); see --help");
  let yaml: string | undefined;
  if (flags.config) {
    try {
      yaml = await Deno.readTextFile(flags.config);
    } catch (e) {
      throw new Error(`--config ${flags.config}: cannot read the file (${(e as Error).message})`);
    }
  }
  return { policy: parsePolicy(flags), cfg: resolveConfig(preset, { yaml, set: flags.set }) };
}

/** The techniques of one device's step, whose flags `train` and `plan` share (ZeRO and Ulysses are plan-only). */
const STEP_TECHNIQUES = TECHNIQUES.filter((t) => t !== ZERO && t !== ULYSSES);

/** `parseArgs` options of the policy flags: `--policy`, `--framework`, and each technique's. */
export const POLICY_OPTIONS: Readonly<Record<string, { type: "string" | "boolean" }>> = {
  policy: { type: "string" },
  framework: { type: "string" },
  "hf-head": { type: "boolean" },
  ...Object.assign({}, ...STEP_TECHNIQUES.map((t) => t.flags?.options ?? {})),
};

/**
 * The memory policy of the flags: `--policy NAME` (one of {@link POLICIES}) as the base, then
 * each technique's flags in declared order (`--mst [M|auto]` (both parts), `--mst-mlp`,
 * `--mst-head` (M, auto or off), `--checkpoint`, `--keep-attention`, `--optimizer-in-backward`,
 * `--offload-checkpoints`; the last two need recomputation), then `--framework ours|hf`
 * (`--hf-head` is the old name of `--framework hf`).
 */
export function parsePolicy(flags: ModelFlags): MemoryPolicy {
  let policy: MemoryPolicy = POLICIES.standard;
  if (flags.policy !== undefined) {
    if (!Object.hasOwn(POLICIES, flags.policy)) {
      throw new Error(
        `--policy: unknown policy "${flags.policy}"; named policies are ${
          Object.keys(POLICIES).join(", ")
        }`,
      );
    }
    policy = POLICIES[flags.policy as PolicyName];
  }
  const values = flags as Record<string, unknown>;
  for (const t of STEP_TECHNIQUES) if (t.flags) policy = t.flags.apply(values, policy);
  const framework = parseFrameworkFlags(flags);
  if (framework) policy = { ...policy, framework };
  validatePolicy(policy);
  return policy;
}

/** Help lines of the policy flags, shared by the tasks' usage texts. */
export const POLICY_HELP = [
  `  --policy NAME   a named memory policy as the base: ${Object.keys(POLICIES).join(", ")}
                  (mst = MsT + recomputation; mstOib adds optimizer-in-backward); flags add to it`,
  ...STEP_TECHNIQUES.map((t) => t.flags?.help).filter((h) => h),
  `  --framework ours|hf  whose allocations to count: this workbench's runtime (default) or
                  Hugging Face transformers + PyTorch (fp32 RMSNorm upcasts and logits, saved SiLU
                  output, RoPE / FlashAttention-2 / torch.optim temporaries; plans add PyTorch's
                  caching allocator); --hf-head is its old name for --framework hf`,
].join("\n");
