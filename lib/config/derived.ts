/**
 * Quantities derived from a {@link ModelConfig}: validation, grouped-query factors, the
 * per-layer attention window, and the parameter list with Hugging Face names and shapes.
 *
 * Parameter order (fixed; {@link parameterShapes} returns it, checkpoints use it):
 *
 * 1. `model.embed_tokens.weight` (V, d)
 * 2. for each layer i = 0..L−1, `model.layers.{i}.`:
 *    `self_attn.q_proj.weight` (H·hd, d), `self_attn.q_proj.bias` (H·hd) if qkvBias,
 *    `self_attn.k_proj.weight` (KV·hd, d), `self_attn.k_proj.bias` (KV·hd) if qkvBias,
 *    `self_attn.v_proj.weight` (KV·hd, d), `self_attn.v_proj.bias` (KV·hd) if qkvBias,
 *    `self_attn.o_proj.weight` (d, H·hd),
 *    `mlp.gate_proj.weight` (I, d), `mlp.up_proj.weight` (I, d), `mlp.down_proj.weight` (d, I),
 *    `input_layernorm.weight` (d), `post_attention_layernorm.weight` (d),
 *    and with postNorms (Gemma-2) `pre_feedforward_layernorm.weight` (d),
 *    `post_feedforward_layernorm.weight` (d)
 * 3. `model.norm.weight` (d)
 * 4. `lm_head.weight` (V, d) unless tieEmbeddings
 *
 * Linear weights follow `nn.Linear`: (out, in). Naming note: in Hugging Face Llama,
 * `post_attention_layernorm` is the norm *before* the MLP; in Gemma-2 it is the norm applied
 * to the attention output, and `pre_feedforward_layernorm` is the one before the MLP.
 * The names are the same either way; the model code decides where each one is applied.
 */

import type { Family, ModelConfig } from "./model_config.ts";

/** One parameter tensor: its Hugging Face name and shape ((out, in) for linear weights). */
export interface ParameterShape {
  /** Hugging Face name, e.g. `model.layers.0.mlp.gate_proj.weight`. */
  name: string;
  /** Dimensions, e.g. `[V, d]`. */
  shape: number[];
}

const FAMILIES: readonly Family[] = ["llama3", "llama2", "mistral", "qwen2", "gemma2"];

/** Width of the query projection output, H·hd. */
function qDim(cfg: ModelConfig): number {
  return cfg.heads * cfg.headDim;
}

/** Width of the key and value projection outputs, KV·hd. */
function kvDim(cfg: ModelConfig): number {
  return cfg.kvHeads * cfg.headDim;
}

/**
 * Attention window of layer `layer` in tokens; 0 means full causal attention.
 * With `slidingWindowLayers: "alternate"` only even layers (0, 2, 4, …) use the window,
 * as in Hugging Face Gemma-2.
 */
export function layerWindow(cfg: ModelConfig, layer: number): number {
  if (cfg.slidingWindow === 0) return 0;
  if (cfg.slidingWindowLayers === "all") return cfg.slidingWindow;
  return layer % 2 === 0 ? cfg.slidingWindow : 0;
}

/**
 * Checks a configuration; throws one Error listing every problem and how to fix it.
 *
 * Checks: positive integer sizes, H divisible by KV, even head dim (RoPE rotates pairs),
 * hd = d/H for the families whose Hugging Face code derives it (all but Gemma-2), positive
 * θ, ε and score scale, non-negative soft-caps and window, known enum values.
 */
export function validateConfig(cfg: ModelConfig): void {
  const errors: string[] = [];
  const positiveInt = (key: keyof ModelConfig) => {
    const v = cfg[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      errors.push(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
    }
  };
  for (
    const key of [
      "vocabSize",
      "hidden",
      "intermediate",
      "layers",
      "heads",
      "kvHeads",
      "headDim",
    ] as const
  ) positiveInt(key);
  if (!FAMILIES.includes(cfg.family)) {
    errors.push(`family must be one of ${FAMILIES.join(", ")}, got ${JSON.stringify(cfg.family)}`);
  }
  if (
    Number.isInteger(cfg.heads) && Number.isInteger(cfg.kvHeads) && cfg.kvHeads > 0 &&
    cfg.heads % cfg.kvHeads !== 0
  ) {
    errors.push(
      `heads (${cfg.heads}) must be divisible by kvHeads (${cfg.kvHeads}); ` +
        `pick kvHeads among the divisors of ${cfg.heads}`,
    );
  }
  if (Number.isInteger(cfg.headDim) && cfg.headDim % 2 !== 0) {
    errors.push(`headDim (${cfg.headDim}) must be even: RoPE rotates pairs of dimensions`);
  }
  if (cfg.family !== "gemma2" && cfg.heads * cfg.headDim !== cfg.hidden) {
    errors.push(
      `headDim (${cfg.headDim}) × heads (${cfg.heads}) must equal hidden (${cfg.hidden}) ` +
        `for family ${cfg.family}; set headDim=${cfg.hidden / cfg.heads} ` +
        `(or use family gemma2, whose head dim is independent of hidden)`,
    );
  }
  const positive = (key: "ropeTheta" | "rmsEps" | "attnScale") => {
    const v = cfg[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      errors.push(`${key} must be a positive finite number, got ${JSON.stringify(v)}`);
    }
  };
  positive("ropeTheta");
  positive("rmsEps");
  positive("attnScale");
  for (const key of ["attnSoftcap", "finalSoftcap"] as const) {
    const v = cfg[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      errors.push(`${key} must be ≥ 0 (0 = off), got ${JSON.stringify(v)}`);
    }
  }
  if (!Number.isInteger(cfg.slidingWindow) || cfg.slidingWindow < 0) {
    errors.push(
      `slidingWindow must be an integer ≥ 0 (0 = full attention), got ${
        JSON.stringify(cfg.slidingWindow)
      }`,
    );
  }
  if (cfg.slidingWindowLayers !== "all" && cfg.slidingWindowLayers !== "alternate") {
    errors.push(
      `slidingWindowLayers must be "all" or "alternate", got ${
        JSON.stringify(cfg.slidingWindowLayers)
      }`,
    );
  }
  if (cfg.activation !== "silu" && cfg.activation !== "gelu_tanh") {
    errors.push(`activation must be "silu" or "gelu_tanh", got ${JSON.stringify(cfg.activation)}`);
  }
  for (
    const key of [
      "tieEmbeddings",
      "qkvBias",
      "embeddingScale",
      "normUnitOffset",
      "postNorms",
    ] as const
  ) {
    if (typeof cfg[key] !== "boolean") {
      errors.push(`${key} must be true or false, got ${JSON.stringify(cfg[key])}`);
    }
  }
  if (errors.length > 0) {
    throw new Error(`invalid model config "${cfg.name}":\n  - ${errors.join("\n  - ")}`);
  }
}

/**
 * Every parameter tensor with its Hugging Face name and shape, in the fixed order of the
 * module doc.
 */
export function parameterShapes(cfg: ModelConfig): ParameterShape[] {
  const d = cfg.hidden;
  const q = qDim(cfg);
  const kv = kvDim(cfg);
  const out: ParameterShape[] = [{ name: "model.embed_tokens.weight", shape: [cfg.vocabSize, d] }];
  for (let i = 0; i < cfg.layers; i++) {
    const p = `model.layers.${i}.`;
    for (const [proj, width] of [["q", q], ["k", kv], ["v", kv]] as const) {
      out.push({ name: `${p}self_attn.${proj}_proj.weight`, shape: [width, d] });
      if (cfg.qkvBias) out.push({ name: `${p}self_attn.${proj}_proj.bias`, shape: [width] });
    }
    out.push({ name: `${p}self_attn.o_proj.weight`, shape: [d, q] });
    out.push({ name: `${p}mlp.gate_proj.weight`, shape: [cfg.intermediate, d] });
    out.push({ name: `${p}mlp.up_proj.weight`, shape: [cfg.intermediate, d] });
    out.push({ name: `${p}mlp.down_proj.weight`, shape: [d, cfg.intermediate] });
    out.push({ name: `${p}input_layernorm.weight`, shape: [d] });
    out.push({ name: `${p}post_attention_layernorm.weight`, shape: [d] });
    if (cfg.postNorms) {
      out.push({ name: `${p}pre_feedforward_layernorm.weight`, shape: [d] });
      out.push({ name: `${p}post_feedforward_layernorm.weight`, shape: [d] });
    }
  }
  out.push({ name: "model.norm.weight", shape: [d] });
  if (!cfg.tieEmbeddings) out.push({ name: "lm_head.weight", shape: [cfg.vocabSize, d] });
  return out;
}

/** Number of elements of a shape. */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Total number of parameters (tied embeddings counted once), computed in closed form:
 * V·d (embedding) + L·(d·H·hd·2 + 2·d·KV·hd + [H·hd + 2·KV·hd if qkvBias] + 3·d·I +
 * d·(2 or 4 norms)) + d (final norm) + V·d (untied head).
 * Equals the sum of {@link parameterShapes} sizes.
 */
export function parameterCount(cfg: ModelConfig): number {
  const d = cfg.hidden;
  const q = qDim(cfg);
  const kv = kvDim(cfg);
  const attn = d * q * 2 + d * kv * 2 + (cfg.qkvBias ? q + 2 * kv : 0);
  const mlp = 3 * d * cfg.intermediate;
  const norms = d * (cfg.postNorms ? 4 : 2);
  const embedding = cfg.vocabSize * d;
  return embedding + cfg.layers * (attn + mlp + norms) + d +
    (cfg.tieEmbeddings ? 0 : embedding);
}
