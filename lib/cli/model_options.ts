/** Resolving a model config and policy from task flags. */

import { resolveConfig } from "../models/resolve.ts";
import type { ModelConfig } from "../models/config.ts";
import type { MstPolicy } from "../models/model.ts";
import { parseMst } from "./args.ts";

/** Model-related flags as parsed by `parseTaskArgs`. */
export interface ModelFlags {
  config?: string;
  set?: string[];
  mst?: string;
  "mst-mlp"?: string;
  "mst-head"?: string;
  checkpoint?: boolean;
  "optimizer-in-backward"?: boolean;
  "hf-head"?: boolean;
}

/** The resolved model setup of a task. */
export interface ModelSetup {
  cfg: ModelConfig;
  mst: MstPolicy;
  checkpoint: boolean;
  optimizerInBackward: boolean;
  /** Unchunked head with transformers' fp32 upcast buffers (memory emulation). */
  head: "standard" | "hf";
}

/** Preset + `--config` YAML + `--set` overrides, and the MsT/recomputation policy. */
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
    return { ...policyOf(flags), cfg: saved };
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
  return { ...policyOf(flags), cfg: resolveConfig(preset, { yaml, set: flags.set }) };
}

/** The MsT / recomputation / head policy of the flags. */
function policyOf(flags: ModelFlags): Omit<ModelSetup, "cfg"> {
  return {
    mst: parseMst(flags),
    checkpoint: flags.checkpoint ?? false,
    optimizerInBackward: flags["optimizer-in-backward"] ?? false,
    head: flags["hf-head"] ? "hf" : "standard",
  };
}

/** A short description of the policy, e.g. "mst(mlp=auto, head=auto) + checkpoint". */
export function describePolicy(
  s: Pick<ModelSetup, "mst" | "checkpoint" | "optimizerInBackward"> & { head?: string },
): string {
  const parts: string[] = [];
  if (s.head === "hf" && s.mst.head === undefined) parts.push("hf-head");
  if (s.mst.mlp !== undefined || s.mst.head !== undefined) {
    parts.push(`mst(mlp=${s.mst.mlp ?? "off"}, head=${s.mst.head ?? "off"})`);
  }
  if (s.checkpoint) parts.push("checkpoint");
  if (s.optimizerInBackward) parts.push("optimizer-in-backward");
  return parts.length ? parts.join(" + ") : "standard";
}
