/**
 * LoRA (and QLoRA): fine-tuning a frozen base through low-rank adapters, with PEFT's semantics
 * (`peft.tuners.lora.layer.Linear`, dropout 0, bias "none"): each targeted projection computes
 * y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ with s = alpha/r (rsLoRA: alpha/√r), A (r, in) Kaiming-uniform
 * (a = √5) and B (out, r) zeros.
 *
 * What it does to memory: every base parameter is frozen — no gradient, no AdamW moments, no
 * f32 master in mixed precision (`Parameter.frozen`) — so weights are the whole static cost;
 * the adapters are ordinary parameters (gradients, moments, masters). Each adapted projection
 * keeps u = s·(x·Aᵀ) (S, r) for backward beside its input, which the layer keeps anyway. With
 * `base: "nf4"` (QLoRA) the blocks' seven projection weights are stored in NF4 with
 * double-quantised absmax (bitsandbytes' scheme, ≈ 4.127 bits per parameter; embeddings, norms
 * and the LM head stay in the device's float type, as bitsandbytes leaves them), dequantised
 * on the fly by the forward and input-gradient kernels (`lib/ops/nf4_matmul.ts`).
 *
 * Policy field `lora` ({@link LoraPolicy}); flags `--lora r=32,alpha=16,targets=all` and
 * `--base-dtype nf4|f16|bf16|f32`.
 */

import type { FloatCounting } from "../device/dtype.ts";
import { createLoraParameters, type LoraAdapter, loraScaling } from "../nn/lora.ts";
import {
  formatLoraOptions,
  LORA_TARGETS,
  type LoraTarget,
  parseLoraOptions,
  peftTargetModules,
} from "../nn/lora_options.ts";
import type { LoraPolicy, MemoryPolicy } from "./memory_policy.ts";
import type { BlockAdapters, Technique } from "./technique.ts";

const TARGETS = Object.keys(LORA_TARGETS) as LoraTarget[];
const BASES = ["nf4", "f32", "f16", "bf16"] as const;

/** The targets of a LoRA policy, in {@link LORA_TARGETS} order (default all). */
export function loraTargets(lora: LoraPolicy): LoraTarget[] {
  const chosen = lora.targets ?? TARGETS;
  return TARGETS.filter((t) => chosen.includes(t));
}

/** The base's storage under `lora`: "nf4", or the device's floats when unset. */
export function loraBase(lora: LoraPolicy, floats?: FloatCounting): "nf4" | FloatCounting {
  return lora.base ?? floats ?? "f32";
}

/** The seed of module `index`'s A (PEFT draws from torch's generator; ours is seeded). */
function adapterSeed(seed: number, index: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
}

function validateLora(lora: LoraPolicy, policy: MemoryPolicy, floats?: FloatCounting): void {
  const where = "memory policy: lora";
  if (typeof lora !== "object" || lora === null) {
    throw new Error(`${where} must be an object { r, alpha, targets?, rslora?, base? }`);
  }
  for (const k of Object.keys(lora)) {
    if (!["r", "alpha", "targets", "rslora", "base"].includes(k)) {
      throw new Error(`${where}: unknown field "${k}"; fields are r, alpha, targets, rslora, base`);
    }
  }
  if (!Number.isInteger(lora.r) || lora.r < 1) {
    throw new Error(`${where}.r must be a positive integer (the rank, e.g. 32), got ${lora.r}`);
  }
  if (typeof lora.alpha !== "number" || !Number.isFinite(lora.alpha) || lora.alpha <= 0) {
    throw new Error(`${where}.alpha must be a number > 0 (e.g. 16), got ${lora.alpha}`);
  }
  if (lora.rslora !== undefined && typeof lora.rslora !== "boolean") {
    throw new Error(`${where}.rslora must be true or false, got ${JSON.stringify(lora.rslora)}`);
  }
  if (lora.targets !== undefined) {
    const t = lora.targets;
    if (!Array.isArray(t) || t.length === 0) {
      throw new Error(`${where}.targets must be a non-empty list of ${TARGETS.join(", ")}`);
    }
    for (const x of t) {
      if (!(TARGETS as string[]).includes(x)) {
        throw new Error(`${where}.targets: unknown layer "${x}"; use ${TARGETS.join(", ")}`);
      }
    }
    if (new Set(t).size !== t.length) throw new Error(`${where}.targets lists a layer twice`);
  }
  if (lora.base !== undefined && !(BASES as readonly string[]).includes(lora.base)) {
    throw new Error(
      `${where}.base must be one of ${BASES.join(", ")} (--base-dtype), got ${
        JSON.stringify(lora.base)
      }`,
    );
  }
  const counting = policy.dtype ?? floats;
  if (lora.base !== undefined && lora.base !== "nf4" && counting && lora.base !== counting) {
    throw new Error(
      `${where}.base "${lora.base}": the frozen base is stored in the device's float type, which ` +
        `counts floats as ${counting}; use --base-dtype ${counting} (or nf4 for QLoRA), or ` +
        `--dtype ${lora.base}`,
    );
  }
  if (policy.parallel && policy.parallel.gpus > 1) {
    throw new Error(
      `${where} with ${policy.parallel.gpus} GPUs: ZeRO and Ulysses plans of a frozen base ` +
        "(no gradients or moments to partition, NF4 storage) are not modelled; plan LoRA on " +
        "one GPU (drop --gpus)",
    );
  }
}

/** LoRA as a memory technique. */
export const LORA: Technique = {
  name: "LoRA",
  about: "a frozen base (no gradients, no optimizer state; NF4 with QLoRA) and small adapters",
  fields: ["lora"],
  enabled: (policy) => policy.lora !== undefined,
  validate(policy, floats) {
    if (policy.lora !== undefined) validateLora(policy.lora, policy, floats);
  },
  describe(policy, name) {
    const lora = policy.lora!;
    const targets = loraTargets(lora);
    name.steps.unshift(
      `${lora.base === "nf4" ? "QLoRA" : "LoRA"} r=${lora.r}${
        targets.length === TARGETS.length ? "" : ` (${targets.join(",")})`
      }`,
    );
  },
  build: {
    configure(m) {
      m.settings.frozenBase = true;
      m.settings.nf4Projections = m.policy.lora!.base === "nf4";
    },
    adapters(m, i): BlockAdapters {
      const lora = m.policy.lora!;
      const scaling = loraScaling(lora.r, lora.alpha, lora.rslora === true);
      const out: BlockAdapters = { attention: {}, mlp: {} };
      const targets = loraTargets(lora);
      for (const t of targets) {
        const module = `model.layers.${i}.${LORA_TARGETS[t]}`;
        const base = m.params.find((p) => p.name === `${module}.weight`)!;
        const [N, K] = base.shape;
        const { a, b } = createLoraParameters(m.dev, module, { r: lora.r, N, K }, {
          seed: adapterSeed(m.init.seed, i * TARGETS.length + TARGETS.indexOf(t)),
          a: m.init.weights?.get(`${module}.lora_A.weight`),
          b: m.init.weights?.get(`${module}.lora_B.weight`),
        });
        m.params.push(a, b);
        const adapter: LoraAdapter = { a, b, scaling };
        if (t === "gate" || t === "up" || t === "down") out.mlp[t] = adapter;
        else out.attention[t] = adapter;
      }
      return out;
    },
  },
  flags: {
    options: { lora: { type: "string" }, "base-dtype": { type: "string" } },
    help: `  --lora SPEC     LoRA fine-tuning (PEFT's semantics, dropout 0): SPEC is r=32,alpha=16
                  [,targets=all|q,k,v,o,gate,up,down][,rslora]; the base is frozen (no gradients,
                  no optimizer state), adapters train
  --base-dtype nf4|f16|bf16|f32  storage of the frozen base under --lora: nf4 is QLoRA
                  (bitsandbytes' NF4, double-quantised absmax, ≈4.127 bits/parameter); a float
                  type must be the device's (--dtype)`,
    apply(values, policy) {
      const spec = values.lora as string | undefined;
      const base = values["base-dtype"] as string | undefined;
      if (spec === undefined) {
        if (base !== undefined) {
          throw new Error(
            `--base-dtype ${base} sets the frozen base's storage under LoRA; add --lora ` +
              "(e.g. --lora r=32,alpha=16,targets=all)",
          );
        }
        return policy;
      }
      const o = parseLoraOptions(spec);
      if (base !== undefined && !(BASES as readonly string[]).includes(base)) {
        throw new Error(`--base-dtype ${base}: use one of ${BASES.join(", ")}`);
      }
      const lora: LoraPolicy = {
        r: o.r,
        alpha: o.alpha,
        targets: o.targets,
        ...(o.rslora ? { rslora: true } : {}),
        ...(base !== undefined ? { base: base as LoraPolicy["base"] } : {}),
      };
      return { ...policy, lora };
    },
  },
  deepspeed(policy) {
    const lora = policy.lora;
    if (!lora) return undefined;
    const targets = peftTargetModules(loraTargets(lora)).map((t) => `"${t}"`).join(", ");
    const quant = lora.base === "nf4"
      ? "; base loaded with `BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=" +
        '"nf4", bnb_4bit_use_double_quant=True)`'
      : "";
    return `- LoRA (${
      formatLoraOptions({
        r: lora.r,
        alpha: lora.alpha,
        targets: loraTargets(lora),
        rslora: lora.rslora === true,
        scaling: 0,
      })
    }): \`peft.LoraConfig(r=${lora.r}, lora_alpha=${lora.alpha}, target_modules=[${targets}], ` +
      `lora_dropout=0.0, bias="none", use_rslora=${lora.rslora ? "True" : "False"})\`${quant}.`;
  },
};
