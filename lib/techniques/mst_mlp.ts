/**
 * MsT's mini-sequence MLP: each block's MLP runs over M chunks of the rows, so its (S, I)
 * intermediates become (S/M, I) (the paper's Algorithm 1; `lib/mst/mini_sequence.ts`).
 * Policy field `mst.mlp` (M, `"auto"` or `"off"`); flags `--mst [M|auto]` (both parts) and
 * `--mst-mlp M|auto|off`.
 */

import type { ModelConfig } from "../config/model_config.ts";
import type { FloatCounting } from "../device/dtype.ts";
import type { MiniSequenceOptions } from "../mst/mini_sequence.ts";
import type { Chunks } from "../mst/chunking.ts";
import { parsePartChunks } from "../util/flag_values.ts";
import type { MemoryPolicy, MstParts, PartChunks } from "./memory_policy.ts";
import type { Technique } from "./technique.ts";

/** The MsT setting of a part (`"off"` when absent). */
export function partChunks(policy: MemoryPolicy, part: "mlp" | "head"): PartChunks {
  return policy.mst?.[part] ?? "off";
}

/** Throws unless `m` is a positive integer, `"auto"` or `"off"`. */
export function checkPartChunks(part: "mlp" | "head", m: unknown): void {
  if (m !== "off" && m !== "auto" && !(Number.isInteger(m) && (m as number) >= 1)) {
    throw new Error(
      `memory policy: mst.${part} must be a positive integer, "auto" or "off", got ${
        JSON.stringify(m)
      }`,
    );
  }
}

/**
 * The name both MsT parts share: `"MsT"` when both are auto, else `"MsT(mlp=…, head=…)"`.
 */
export function mstLabel(policy: MemoryPolicy): string {
  const mlp = partChunks(policy, "mlp");
  const head = partChunks(policy, "head");
  return mlp === "auto" && head === "auto" ? "MsT" : `MsT(mlp=${mlp}, head=${head})`;
}

/**
 * The MLP's chunk sizing for the `"auto"` rule: chunks of about d rows (the paper's
 * ⌈S/d⌉), the widest row I, and the transient bytes one chunk row allocates — x, gate, up, h,
 * out, dh, dGate, dUp and the dx parts: (4·d + 6·I) elements.
 */
export function mlpChunking(
  cfg: ModelConfig,
  floats: FloatCounting,
  chunks: Chunks,
): MiniSequenceOptions {
  const elem = floats === "f32" ? 4 : 2;
  return {
    chunks,
    outFeatures: cfg.hidden,
    widestRow: cfg.intermediate,
    bytesPerRow: (4 * cfg.hidden + 6 * cfg.intermediate) * elem,
    rowsPerChunk: cfg.hidden,
  };
}

/** The mini-sequence MLP. */
export const MST_MLP: Technique = {
  name: "MsT MLP",
  about: "each block's MLP over M mini-sequences of the rows",
  fields: ["mst"],
  enabled: (policy) => partChunks(policy, "mlp") !== "off",
  validate(policy) {
    for (const k of Object.keys(policy.mst ?? {})) {
      if (k !== "mlp" && k !== "head") {
        throw new Error(`memory policy: unknown mst part "${k}"; parts are mlp and head`);
      }
    }
    checkPartChunks("mlp", partChunks(policy, "mlp"));
  },
  describe(policy, name) {
    if (!name.steps.includes(mstLabel(policy))) name.steps.push(mstLabel(policy));
  },
  build: {
    wrapMlp(m, mlp) {
      const chunks = partChunks(m.policy, "mlp") as Chunks;
      const wrapped = m.layers.miniSequence(m.dev, mlp, mlpChunking(m.cfg, m.dev.floats, chunks));
      m.mstMlps.push(wrapped);
      return wrapped;
    },
  },
  flags: {
    options: { mst: { type: "string" }, "mst-mlp": { type: "string" } },
    help:
      `  --mst [M|auto]  mini-sequences for the MLP and the head; --mst-mlp / --mst-head set one part
                  (M, auto or off); an M above S runs S one-row chunks and warns`,
    apply(values, policy) {
      const mst: { -readonly [K in keyof MstParts]: MstParts[K] } = { ...policy.mst };
      if (values.mst !== undefined) mst.mlp = mst.head = parsePartChunks("--mst", `${values.mst}`);
      if (values["mst-mlp"] !== undefined) {
        mst.mlp = parsePartChunks("--mst-mlp", `${values["mst-mlp"]}`);
      }
      return Object.keys(mst).length ? { ...policy, mst } : policy;
    },
  },
  deepspeed(policy, draft) {
    const setting = partChunks(policy, "mlp");
    const m = draft.chunks.mlp;
    return `- Tiled MLP: ${
      setting === "off"
        ? "off"
        : `shards = our MLP M = ${m ?? setting} (\`TiledMLP.apply(mlp_forward, self, x, ` +
          `num_shards=${m ?? "M"}, compute_params)\`; ArcticTraining's \`tiled_mlp_compute: ` +
          "true` derives ⌈seqlen/hidden⌉ per rank, our `auto` rule too)"
    }.`;
  },
};
