/**
 * Model configuration of the Llama family (Llama 3, Llama 2, Mistral, Qwen2, Gemma-2).
 *
 * One interface covers every family; family features are flags. Symbols: d hidden,
 * I intermediate (MLP), V vocab, L layers, H heads, KV kv heads, hd head dim.
 */

/** The model families the paper used. */
export type Family = "llama3" | "llama2" | "mistral" | "qwen2" | "gemma2";

/** A model's shape and features. */
export interface ModelConfig {
  /** Preset name, e.g. `llama3-8b`. */
  name: string;
  /** Model family; selects the family-specific features. */
  family: Family;
  /** V */
  vocabSize: number;
  /** d */
  hidden: number;
  /** I */
  intermediate: number;
  /** L */
  layers: number;
  /** H */
  heads: number;
  /** KV (grouped-query attention when < H) */
  kvHeads: number;
  /** hd (usually d / H; Gemma-2 uses 256) */
  headDim: number;
  /** Rotary base θ. */
  ropeTheta: number;
  /** RMSNorm ε. */
  rmsEps: number;
  /** MLP gate activation: SwiGLU (`silu`) or GeGLU (`gelu_tanh`). */
  activation: "silu" | "gelu_tanh";
  /** LM head shares the embedding matrix. */
  tieEmbeddings: boolean;
  /** Bias on the q, k, v projections (Qwen2). */
  qkvBias: boolean;
  /** Multiply embeddings by √d (Gemma-2). */
  embeddingScale: boolean;
  /** RMSNorm computes x·rstd·(1 + w) with w initialized to 0 (Gemma-2). */
  normUnitOffset: boolean;
  /** Extra norms after attention and after the MLP (Gemma-2 pre+post norms). */
  postNorms: boolean;
  /** Attention logit soft-cap c (s → c·tanh(s/c)); 0 = off. */
  attnSoftcap: number;
  /** Final logit soft-cap; 0 = off. */
  finalSoftcap: number;
  /** Sliding attention window in tokens; 0 = full causal attention. */
  slidingWindow: number;
  /** Which layers use the window: all, or every even layer 0, 2, 4… (Gemma-2). */
  slidingWindowLayers: "all" | "alternate";
  /** Attention score scale; Llama: 1/√hd, Gemma-2: query_pre_attn_scalar^(−1/2). */
  attnScale: number;
}
