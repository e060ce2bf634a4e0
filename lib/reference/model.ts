/**
 * The f64 reference model: a complete Llama-family decoder (Llama 3/2, Mistral, Qwen2,
 * Gemma-2 features) written with the tape autograd of `autograd.ts`.
 *
 * Its gradients come from automatic differentiation, independently of the hand-written GPU
 * backward passes, so "GPU gradients match the reference" checks the whole training path.
 * Parameters use Hugging Face names and the nn.Linear (out, in) layout. Batch size 1.
 */

import type { ModelConfig } from "../config/model_config.ts";
import * as ag from "./autograd.ts";

/** Named f64 parameters (Hugging Face names, row-major). */
export type RefParams = Map<string, { shape: number[]; data: Float64Array }>;

/** Result of {@link referenceLoss}. */
export interface ReferenceResult {
  /** Mean cross-entropy over valid targets (0 when none is valid). */
  loss: number;
  /** Gradient of the loss for every parameter. */
  grads: Map<string, Float64Array>;
}

/**
 * LoRA in the reference (PEFT's semantics, dropout 0): a projection `<m>` whose adapter leaves
 * `<m>.lora_A.weight` (r, in) and `<m>.lora_B.weight` (out, r) are among the parameters gets
 * y = x·Wᵀ (+ b) + scaling·(x·Aᵀ)·Bᵀ.
 */
export interface ReferenceLora {
  /** s = alpha/r (or alpha/√r with rsLoRA). */
  scaling: number;
}

/** Options of {@link referenceLoss}. */
export interface ReferenceOptions {
  /** LoRA adapters among the parameters, with their scaling. */
  lora?: ReferenceLora;
  /** Denominator of the loss (default: the number of targets ≠ ignoreIndex). */
  lossDenominator?: number;
  /** Target value that marks an ignored position (default −100). */
  ignoreIndex?: number;
}

/** Loss and all parameter gradients of one sequence. */
export function referenceLoss(
  cfg: ModelConfig,
  params: RefParams,
  ids: ArrayLike<number>,
  targets: ArrayLike<number>,
  opts: ReferenceOptions = {},
): ReferenceResult {
  const vars = leaves(params);
  const loss = referenceForward(cfg, vars, ids, targets, opts);
  ag.backward(loss);
  const grads = new Map<string, Float64Array>();
  for (const [name, v] of vars) grads.set(name, v.grad ?? new Float64Array(v.data.length));
  return { loss: loss.data[0], grads };
}

/** Autograd leaves of the parameters: matrices (out, in), vectors as (1, n). */
export function leaves(params: RefParams): Map<string, ag.Var> {
  const vars = new Map<string, ag.Var>();
  for (const [name, p] of params) {
    const [rows, cols] = p.shape.length === 1 ? [1, p.shape[0]] : [p.shape[0], p.shape[1]];
    vars.set(name, ag.leaf(rows, cols, p.data));
  }
  return vars;
}

function param(vars: Map<string, ag.Var>, name: string): ag.Var {
  const v = vars.get(name);
  if (!v) throw new Error(`reference model: missing parameter "${name}"`);
  return v;
}

/** x·Wᵀ (+ b): x (S, in), W (out, in). */
function linear(x: ag.Var, w: ag.Var, b?: ag.Var): ag.Var {
  const y = ag.matmul(x, ag.transpose(w));
  return b ? ag.rowBroadcast(y, b, "add") : y;
}

/**
 * Projection `<module>` of x: `<module>.weight`, its bias when `bias`, and its LoRA adapter when
 * its leaves are present and `lora` is given.
 */
function project(
  vars: Map<string, ag.Var>,
  module: string,
  x: ag.Var,
  lora: ReferenceLora | undefined,
  bias = false,
): ag.Var {
  const y = linear(
    x,
    param(vars, `${module}.weight`),
    bias ? param(vars, `${module}.bias`) : undefined,
  );
  const a = vars.get(`${module}.lora_A.weight`);
  if (!lora || !a) return y;
  const b = param(vars, `${module}.lora_B.weight`);
  // PEFT: result + lora_B(lora_A(x)) * scaling
  return ag.add(
    y,
    ag.scale(ag.matmul(ag.matmul(x, ag.transpose(a)), ag.transpose(b)), lora.scaling),
  );
}

/**
 * The attention sublayer of block `pre` (e.g. `model.layers.0.`) at its normed input a (S, d):
 * projections (with LoRA when given), rotary embedding, causal attention, output projection.
 */
export function referenceAttention(
  cfg: ModelConfig,
  vars: Map<string, ag.Var>,
  pre: string,
  a: ag.Var,
  window: number,
  lora?: ReferenceLora,
): ag.Var {
  const proj = (n: string, x: ag.Var, bias = false) =>
    project(vars, `${pre}self_attn.${n}_proj`, x, lora, bias);
  let q = proj("q", a, cfg.qkvBias);
  let k = proj("k", a, cfg.qkvBias);
  const v = proj("v", a, cfg.qkvBias);
  q = rope(q, cfg.heads, cfg.headDim, cfg.ropeTheta);
  k = rope(k, cfg.kvHeads, cfg.headDim, cfg.ropeTheta);
  const o = attention(cfg, q, k, v, window);
  return proj("o", o);
}

/** The gated MLP of block `pre` at its normed input b (S, d), with LoRA when given. */
export function referenceMlp(
  cfg: ModelConfig,
  vars: Map<string, ag.Var>,
  pre: string,
  b: ag.Var,
  lora?: ReferenceLora,
): ag.Var {
  const proj = (n: string, x: ag.Var) => project(vars, `${pre}mlp.${n}_proj`, x, lora);
  const gate = proj("gate", b);
  const up = proj("up", b);
  const act = cfg.activation === "silu" ? ag.silu(gate) : gelu_tanh(gate);
  return proj("down", ag.mul(act, up));
}

function rmsnorm(x: ag.Var, w: ag.Var, eps: number, unitOffset: boolean): ag.Var {
  const ms = ag.scale(ag.rowSum(ag.mul(x, x)), 1 / x.cols); // (S, 1)
  const r = ag.rsqrt(ag.addConst(ms, eps)); // (S, 1)
  const n = ag.colMul(x, r);
  return ag.rowBroadcast(n, unitOffset ? ag.addConst(w, 1) : w, "mul");
}

function gelu_tanh(x: ag.Var): ag.Var {
  const c = Math.sqrt(2 / Math.PI);
  return ag.unary(
    x,
    (v) => 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v ** 3))),
    (v) => {
      const u = c * (v + 0.044715 * v ** 3);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v);
    },
  );
}

/** Rotary embedding (HF rotate_half) of x (S, nh·hd) at positions 0..S-1. */
function rope(x: ag.Var, nh: number, hd: number, theta: number): ag.Var {
  const S = x.rows;
  const half = hd / 2;
  const cos = new Float64Array(S * hd);
  const sin = new Float64Array(S * hd);
  for (let s = 0; s < S; s++) {
    for (let i = 0; i < half; i++) {
      const a = s * Math.pow(theta, -(2 * i) / hd);
      cos[s * hd + i] = cos[s * hd + i + half] = Math.cos(a);
      sin[s * hd + i] = sin[s * hd + i + half] = Math.sin(a);
    }
  }
  const cosV = ag.leaf(S, hd, cos);
  const sinV = ag.leaf(S, hd, sin);
  const heads: ag.Var[] = [];
  for (let h = 0; h < nh; h++) {
    const xh = ag.sliceCols(x, h * hd, hd);
    const x1 = ag.sliceCols(xh, 0, half);
    const x2 = ag.sliceCols(xh, half, half);
    const rot = ag.concatCols([ag.scale(x2, -1), x1]);
    heads.push(ag.add(ag.mul(xh, cosV), ag.mul(rot, sinV)));
  }
  return ag.concatCols(heads);
}

function attention(
  cfg: ModelConfig,
  q: ag.Var,
  k: ag.Var,
  v: ag.Var,
  window: number,
): ag.Var {
  const S = q.rows;
  const hd = cfg.headDim;
  const group = cfg.heads / cfg.kvHeads;
  const mask = new Float64Array(S * S);
  for (let i = 0; i < S; i++) {
    for (let j = 0; j < S; j++) {
      const visible = j <= i && (window <= 0 || j > i - window);
      mask[i * S + j] = visible ? 0 : -Infinity;
    }
  }
  const outs: ag.Var[] = [];
  for (let h = 0; h < cfg.heads; h++) {
    const g = Math.floor(h / group);
    const qh = ag.sliceCols(q, h * hd, hd);
    const kh = ag.sliceCols(k, g * hd, hd);
    const vh = ag.sliceCols(v, g * hd, hd);
    let s = ag.scale(ag.matmul(qh, ag.transpose(kh)), cfg.attnScale);
    if (cfg.attnSoftcap > 0) {
      s = ag.scale(ag.tanh(ag.scale(s, 1 / cfg.attnSoftcap)), cfg.attnSoftcap);
    }
    const p = ag.softmaxRows(ag.addConstMatrix(s, mask));
    outs.push(ag.matmul(p, vh));
  }
  return ag.concatCols(outs);
}

/** Whether layer `i` uses the sliding window. */
export function layerWindow(cfg: ModelConfig, i: number): number {
  if (cfg.slidingWindow <= 0) return 0;
  if (cfg.slidingWindowLayers === "alternate") return i % 2 === 0 ? cfg.slidingWindow : 0;
  return cfg.slidingWindow;
}

function referenceForward(
  cfg: ModelConfig,
  vars: Map<string, ag.Var>,
  ids: ArrayLike<number>,
  targets: ArrayLike<number>,
  opts: ReferenceOptions,
): ag.Var {
  const ignore = opts.ignoreIndex ?? -100;
  const P = (n: string) => param(vars, n);
  const embed = P("model.embed_tokens.weight");
  let h = ag.gatherRows(embed, ids); // (S, d)
  if (cfg.embeddingScale) h = ag.scale(h, Math.sqrt(cfg.hidden));
  const norm = (x: ag.Var, name: string) => rmsnorm(x, P(name), cfg.rmsEps, cfg.normUnitOffset);
  for (let i = 0; i < cfg.layers; i++) {
    const pre = `model.layers.${i}.`;
    const a = norm(h, pre + "input_layernorm.weight");
    let attnOut = referenceAttention(cfg, vars, pre, a, layerWindow(cfg, i), opts.lora);
    if (cfg.postNorms) attnOut = norm(attnOut, pre + "post_attention_layernorm.weight");
    h = ag.add(h, attnOut);
    const b = norm(
      h,
      pre +
        (cfg.postNorms ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"),
    );
    let m = referenceMlp(cfg, vars, pre, b, opts.lora);
    if (cfg.postNorms) m = norm(m, pre + "post_feedforward_layernorm.weight");
    h = ag.add(h, m);
  }
  h = norm(h, "model.norm.weight");
  const head = cfg.tieEmbeddings ? embed : P("lm_head.weight");
  let z = linear(h, head); // (S, V)
  if (cfg.finalSoftcap > 0) {
    z = ag.scale(ag.tanh(ag.scale(z, 1 / cfg.finalSoftcap)), cfg.finalSoftcap);
  }
  const lse = ag.logSumExpRows(z);
  const picked = ag.pick(z, targets);
  const valid = Float64Array.from(
    { length: targets.length },
    (_, i) => targets[i] === ignore ? 0 : 1,
  );
  const nValid = valid.reduce((a, b) => a + b, 0);
  const perRow = ag.mul(ag.add(lse, ag.scale(picked, -1)), ag.leaf(targets.length, 1, valid));
  const denom = opts.lossDenominator ?? nValid;
  return ag.scale(ag.sumAll(perRow), denom > 0 ? 1 / denom : 0);
}
