/** Resolving a model config and memory policy from task flags (the one flag → policy parser). */

import { resolveConfig } from "../config/resolve.ts";
import type { ModelConfig } from "../config/model_config.ts";
import {
  type MemoryPolicy,
  type MstParts,
  POLICIES,
  type PolicyName,
  validatePolicy,
} from "../techniques/policy.ts";
import { parsePartChunks } from "./args.ts";
import { type Framework, parseFramework } from "../profiles/hf/extras.ts";

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

/**
 * The memory policy of the flags: `--policy NAME` (one of {@link POLICIES}) as the base, then
 * `--mst [M|auto]` (both parts), `--mst-mlp`, `--mst-head` (M, auto or off), `--checkpoint`,
 * `--optimizer-in-backward`, `--framework ours|hf` (`--hf-head` is the old name of
 * `--framework hf`), `--offload-checkpoints` and `--keep-attention` (both need recomputation)
 * on top.
 */
export function parsePolicy(flags: ModelFlags): MemoryPolicy {
  let base: MemoryPolicy = POLICIES.standard;
  if (flags.policy !== undefined) {
    if (!Object.hasOwn(POLICIES, flags.policy)) {
      throw new Error(
        `--policy: unknown policy "${flags.policy}"; named policies are ${
          Object.keys(POLICIES).join(", ")
        }`,
      );
    }
    base = POLICIES[flags.policy as PolicyName];
  }
  const mst: { -readonly [K in keyof MstParts]: MstParts[K] } = { ...base.mst };
  if (flags.mst !== undefined) mst.mlp = mst.head = parsePartChunks("--mst", flags.mst);
  if (flags["mst-mlp"] !== undefined) mst.mlp = parsePartChunks("--mst-mlp", flags["mst-mlp"]);
  if (flags["mst-head"] !== undefined) {
    mst.head = parsePartChunks("--mst-head", flags["mst-head"]);
  }
  let policy: MemoryPolicy = {
    ...base,
    ...(Object.keys(mst).length ? { mst } : {}),
    ...(flags.checkpoint ? { checkpoint: true } : {}),
    ...(flags["optimizer-in-backward"] ? { optimizerInBackward: true } : {}),
    ...(flags["offload-checkpoints"] ? { offload: true } : {}),
    ...(flags["keep-attention"] ? { keepAttention: true } : {}),
  };
  const framework = parseFrameworkFlags(flags);
  if (framework) policy = { ...policy, framework };
  if (policy.offload && !policy.checkpoint) {
    throw new Error(
      "--offload-checkpoints moves the recomputation checkpoints to host memory, but " +
        "recomputation is off; add --checkpoint (or --policy mst)",
    );
  }
  if (policy.keepAttention && !policy.checkpoint) {
    throw new Error(
      "--keep-attention keeps each block's attention output through recomputation, but " +
        "recomputation is off; add --checkpoint (or --policy mst)",
    );
  }
  validatePolicy(policy);
  return policy;
}

/** Help lines of the policy flags, shared by the tasks' usage texts. */
export const POLICY_HELP = `  --policy NAME   a named memory policy as the base: ${
  Object.keys(POLICIES).join(", ")
}
                  (mst = MsT + recomputation; mstOib adds optimizer-in-backward); flags add to it
  --mst [M|auto]  mini-sequences for the MLP and the head; --mst-mlp / --mst-head set one part
                  (M, auto or off); an M above S runs S one-row chunks and warns
  --framework ours|hf  whose allocations to count: this workbench's runtime (default) or
                  Hugging Face transformers + PyTorch (fp32 RMSNorm upcasts and logits, saved SiLU
                  output, RoPE / FlashAttention-2 / torch.optim temporaries; plans add PyTorch's
                  caching allocator); --hf-head is its old name for --framework hf
  --offload-checkpoints  keep each block's input checkpoint in host memory between its
                  forward and its recomputation (needs --checkpoint); host bytes are reported
                  apart (tag host), outside the device peak and budget
  --keep-attention  selective recomputation (needs --checkpoint): each block also keeps its
                  attention output and softmax statistics, so backward skips the attention
                  kernel; more checkpoint memory, less recomputation time at long S`;
