/**
 * Named model presets: the public configurations of the models the paper trained, plus
 * tiny variants of each family for tests and laptop-sized convergence runs.
 *
 * Full-size presets copy the Hugging Face `config.json` of each model:
 *
 * | preset | d | I | V | L | H/KV | hd | notes |
 * |---|---|---|---|---|---|---|---|
 * | `llama3-8b` | 4096 | 14336 | 128256 | 32 | 32/8 | 128 | θ 500000, untied |
 * | `llama2-7b` | 4096 | 11008 | 32000 | 32 | 32/32 | 128 | θ 10000 |
 * | `mistral-7b` | 4096 | 14336 | 32000 | 32 | 32/8 | 128 | v0.1: window 4096 on all layers |
 * | `qwen2-7b` | 3584 | 18944 | 152064 | 28 | 28/4 | 128 | qkv bias, θ 1e6, ε 1e-6 |
 * | `gemma2-9b` | 3584 | 14336 | 256000 | 42 | 16/8 | 256 | Gemma-2 features (below) |
 * | `gemma2-2b` | 2304 | 9216 | 256000 | 26 | 8/4 | 256 | Gemma-2 features (below) |
 * | `llama3.3-70b` | 8192 | 28672 | 128256 | 80 | 64/8 | 128 | θ 500000, ε 1e-5, untied (below) |
 *
 * `llama3.3-70b` is `meta-llama/Llama-3.3-70B-Instruct`'s config.json (the anchor of Unsloth's
 * Llama 3.3 QLoRA post): hidden_size 8192, intermediate_size 28672, num_hidden_layers 80,
 * num_attention_heads 64, num_key_value_heads 8, vocab_size 128256, rope_theta 500000,
 * rms_norm_eps 1e-5, tie_word_embeddings false, attention_bias false, hidden_act silu. Its
 * max_position_embeddings 131072 and `rope_scaling` (rope_type llama3, factor 8,
 * low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192) are not fields
 * of {@link ModelConfig}: they change the rotary frequencies, not a tensor's size, and the
 * preset is for planning (as `llama3-8b` omits Llama 3.1's same scaling).
 *
 * Gemma-2 features: tied embeddings, GeGLU with tanh-GELU, embeddings × √d, RMSNorm with
 * unit offset (1 + w), pre+post norms around attention and MLP, attention soft-cap 50,
 * final soft-cap 30, sliding window 4096 on even layers, score scale
 * `query_pre_attn_scalar^-1/2` = 256^-1/2, ε 1e-6, θ 10000.
 *
 * Tiny presets (all d = 64, L = 2) keep each family's features and, approximately, its
 * I/d and V/d ratios; V never drops below 512 so the reduced BPE tokenizer (256 byte ids +
 * merged tokens) still has room for real tokens:
 *
 * | preset | I (I/d; real) | V (V/d; real) | H/KV | hd | other |
 * |---|---|---|---|---|---|
 * | `llama3-tiny` | 224 (3.5; 3.5) | 2048 (32; 31.3) | 4/2 | 16 | as in the issue: GQA ratio 2 (real 4) so KV > 1 stays tested |
 * | `llama2-tiny` | 172 (2.69; 2.69) | 512 (8; 7.8) | 4/4 | 16 | multi-head attention as in Llama 2 |
 * | `mistral-tiny` | 224 (3.5; 3.5) | 512 (8; 7.8) | 4/1 | 16 | GQA ratio 4 as in Mistral; window 32 on all layers |
 * | `qwen2-tiny` | 336 (5.25; 5.29) | 2688 (42; 42.4) | 4/1 | 16 | qkv bias; ratio 7 impossible with 4 heads, 4 is closest |
 * | `gemma2-tiny` | 256 (4; 4) | 4544 (71; 71.4) | 4/2 | 32 | H·hd = 128 ≠ d as in Gemma-2-9B; window 32 on even layers; scale 32^-1/2 |
 */

import type { ModelConfig } from "./model_config.ts";

/** Llama-style defaults shared by every preset; each preset overrides what differs. */
const LLAMA_FEATURES = {
  activation: "silu",
  tieEmbeddings: false,
  qkvBias: false,
  embeddingScale: false,
  normUnitOffset: false,
  postNorms: false,
  attnSoftcap: 0,
  finalSoftcap: 0,
  slidingWindow: 0,
  slidingWindowLayers: "all",
} as const satisfies Partial<ModelConfig>;

/** Gemma-2 features (window size and score scale set per preset). */
const GEMMA2_FEATURES = {
  activation: "gelu_tanh",
  tieEmbeddings: true,
  qkvBias: false,
  embeddingScale: true,
  normUnitOffset: true,
  postNorms: true,
  attnSoftcap: 50,
  finalSoftcap: 30,
  slidingWindowLayers: "alternate",
  ropeTheta: 10000,
  rmsEps: 1e-6,
} as const satisfies Partial<ModelConfig>;

const PRESET_LIST: readonly ModelConfig[] = [
  {
    ...LLAMA_FEATURES,
    name: "llama3-8b",
    family: "llama3",
    vocabSize: 128256,
    hidden: 4096,
    intermediate: 14336,
    layers: 32,
    heads: 32,
    kvHeads: 8,
    headDim: 128,
    ropeTheta: 500000,
    rmsEps: 1e-5,
    attnScale: 128 ** -0.5,
  },
  {
    ...LLAMA_FEATURES,
    name: "llama2-7b",
    family: "llama2",
    vocabSize: 32000,
    hidden: 4096,
    intermediate: 11008,
    layers: 32,
    heads: 32,
    kvHeads: 32,
    headDim: 128,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    attnScale: 128 ** -0.5,
  },
  {
    ...LLAMA_FEATURES,
    name: "mistral-7b",
    family: "mistral",
    vocabSize: 32000,
    hidden: 4096,
    intermediate: 14336,
    layers: 32,
    heads: 32,
    kvHeads: 8,
    headDim: 128,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    slidingWindow: 4096,
    slidingWindowLayers: "all",
    attnScale: 128 ** -0.5,
  },
  {
    ...LLAMA_FEATURES,
    name: "qwen2-7b",
    family: "qwen2",
    vocabSize: 152064,
    hidden: 3584,
    intermediate: 18944,
    layers: 28,
    heads: 28,
    kvHeads: 4,
    headDim: 128,
    ropeTheta: 1000000,
    rmsEps: 1e-6,
    qkvBias: true,
    attnScale: 128 ** -0.5,
  },
  {
    ...GEMMA2_FEATURES,
    name: "gemma2-9b",
    family: "gemma2",
    vocabSize: 256000,
    hidden: 3584,
    intermediate: 14336,
    layers: 42,
    heads: 16,
    kvHeads: 8,
    headDim: 256,
    slidingWindow: 4096,
    attnScale: 256 ** -0.5,
  },
  {
    ...GEMMA2_FEATURES,
    name: "gemma2-2b",
    family: "gemma2",
    vocabSize: 256000,
    hidden: 2304,
    intermediate: 9216,
    layers: 26,
    heads: 8,
    kvHeads: 4,
    headDim: 256,
    slidingWindow: 4096,
    attnScale: 256 ** -0.5,
  },
  {
    ...LLAMA_FEATURES,
    name: "llama3.3-70b",
    family: "llama3",
    vocabSize: 128256,
    hidden: 8192,
    intermediate: 28672,
    layers: 80,
    heads: 64,
    kvHeads: 8,
    headDim: 128,
    ropeTheta: 500000,
    rmsEps: 1e-5,
    attnScale: 128 ** -0.5,
  },
  {
    ...LLAMA_FEATURES,
    name: "llama3-tiny",
    family: "llama3",
    vocabSize: 2048,
    hidden: 64,
    intermediate: 224,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    ropeTheta: 500000,
    rmsEps: 1e-5,
    attnScale: 16 ** -0.5,
  },
  {
    ...LLAMA_FEATURES,
    name: "llama2-tiny",
    family: "llama2",
    vocabSize: 512,
    hidden: 64,
    intermediate: 172,
    layers: 2,
    heads: 4,
    kvHeads: 4,
    headDim: 16,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    attnScale: 16 ** -0.5,
  },
  {
    ...LLAMA_FEATURES,
    name: "mistral-tiny",
    family: "mistral",
    vocabSize: 512,
    hidden: 64,
    intermediate: 224,
    layers: 2,
    heads: 4,
    kvHeads: 1,
    headDim: 16,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    slidingWindow: 32,
    slidingWindowLayers: "all",
    attnScale: 16 ** -0.5,
  },
  {
    ...LLAMA_FEATURES,
    name: "qwen2-tiny",
    family: "qwen2",
    vocabSize: 2688,
    hidden: 64,
    intermediate: 336,
    layers: 2,
    heads: 4,
    kvHeads: 1,
    headDim: 16,
    ropeTheta: 1000000,
    rmsEps: 1e-6,
    qkvBias: true,
    attnScale: 16 ** -0.5,
  },
  {
    ...GEMMA2_FEATURES,
    name: "gemma2-tiny",
    family: "gemma2",
    vocabSize: 4544,
    hidden: 64,
    intermediate: 256,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 32,
    slidingWindow: 32,
    attnScale: 32 ** -0.5,
  },
];

/** Names of all presets, in registry order (full-size models first, then tiny ones). */
export const PRESET_NAMES: readonly string[] = PRESET_LIST.map((p) => p.name);

/**
 * A fresh copy of the preset `name` (mutating it does not affect the registry).
 * @throws Error naming the unknown preset and listing the known ones.
 */
export function getPreset(name: string): ModelConfig {
  const found = PRESET_LIST.find((p) => p.name === name);
  if (!found) {
    throw new Error(
      `unknown model preset "${name}"; known presets: ${PRESET_NAMES.join(", ")}`,
    );
  }
  return { ...found };
}

/** Fresh copies of every preset, in registry order. */
export function allPresets(): ModelConfig[] {
  return PRESET_LIST.map((p) => ({ ...p }));
}
