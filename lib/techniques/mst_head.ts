/**
 * MsT's mini-sequence LM head + loss: the (S, V) logits become M chunks of (S/M, V), each
 * turned into its loss and gradient before the next (`lib/mst/mini_sequence_head.ts`).
 * Policy field `mst.head`; flag `--mst-head M|auto|off` (and `--mst`, see the MLP's).
 */

import type { AutoChunkInput, Chunks } from "../mst/chunking.ts";
import type { Device } from "../device/device.ts";
import { parsePartChunks } from "../util/flag_values.ts";
import { checkPartChunks, mstLabel, partChunks } from "./mst_mlp.ts";
import type { MstParts } from "./memory_policy.ts";
import type { Technique } from "./technique.ts";

/**
 * The head's chunk sizing for the `"auto"` rule, for S rows of a (V, d) head: ⌈V/d⌉ chunks
 * by shape, the widest row V, and per chunk row the logits plus the hidden rows and their
 * gradient and the two row statistics: (V + 2·d + 2) elements.
 */
export function headChunking(dev: Device, S: number, V: number, d: number): AutoChunkInput {
  const elem = dev.floats === "f32" ? 4 : 2;
  return { S, shapeRule: Math.ceil(V / d), widestRow: V, bytesPerRow: (V + 2 * d + 2) * elem };
}

/** The mini-sequence LM head + loss. */
export const MST_HEAD: Technique = {
  name: "MsT head",
  about: "the LM head and its loss over M mini-sequences, never all (S, V) logits",
  fields: ["mst"],
  enabled: (policy) => partChunks(policy, "head") !== "off",
  validate(policy) {
    checkPartChunks("head", partChunks(policy, "head"));
  },
  describe(policy, name) {
    if (!name.steps.includes(mstLabel(policy))) name.steps.push(mstLabel(policy));
  },
  build: {
    head(m, weight) {
      const chunks = partChunks(m.policy, "head") as Chunks;
      return m.layers.miniSequenceHead(
        m.dev,
        "lm_head",
        weight,
        m.cfg.finalSoftcap,
        chunks,
        headChunking,
      );
    },
  },
  flags: {
    options: { "mst-head": { type: "string" } },
    help: "",
    apply(values, policy) {
      if (values["mst-head"] === undefined) return policy;
      const mst: { -readonly [K in keyof MstParts]: MstParts[K] } = { ...policy.mst };
      mst.head = parsePartChunks("--mst-head", `${values["mst-head"]}`);
      return { ...policy, mst };
    },
  },
  deepspeed(policy, draft) {
    const setting = partChunks(policy, "head");
    const m = draft.chunks.head;
    return `- Tiled loss: ${
      setting === "off"
        ? "off"
        : `loss tiles = our head M = ${m ?? setting} (DeepSpeed's \`sequence_tiled_compute\` ` +
          `/ ArcticTraining's \`TiledFusedLogitsLoss\` with \`num_shards=${m ?? "M"}\`, or ` +
          "Liger-Kernel's fused linear cross-entropy, `model.type: liger`)"
    }.`;
  },
};
