/**
 * The Llama model in TensorFlow.js (WebGPU backend): the peer our training-step benchmark
 * compares against on the same machine.
 *
 * The math is that of the f64 reference model (`lib/reference/model.ts`): Hugging Face
 * parameter names and `nn.Linear` (out, in) weights, RMSNorm, HF rotate_half RoPE, causal
 * grouped-query attention, SwiGLU MLP, untied LM head, mean cross-entropy over targets
 * ≠ −100. It is written the way a TF.js user would write it: attention as plain matmuls over
 * the full S×S score matrix plus an additive causal mask and a softmax, gradients from
 * `tf.variableGrads`, and AdamW as tensor ops (PyTorch semantics, as `lib/optim/adamw.ts`:
 * β1 0.9, β2 0.95, ε 1e-8, decoupled weight decay 0.1 on matrices only, global-norm clip 1).
 *
 * Supported features: the Llama 3 / Llama 2 feature set (SwiGLU, no biases, untied head, no
 * soft-caps, no sliding window, no Gemma-2 norms or embedding scale). Other configs are
 * rejected by {@link TfjsLlama.create} with the list of unsupported features.
 *
 * Known TF.js 4.22 pitfalls avoided here (see docs/environment.md): gradients need the full
 * `@tensorflow/tfjs` package (tfjs-core alone registers none); the WebGPU "SplitK" matmul
 * is wrong with a transposed second operand and K ≥ ~2000, so every weight is kept in the
 * (out, in) layout and used as `matMul(x, W, false, true)` (K = the input width, small),
 * whose gradients use no transposed second operand with a large K; no recomputation (nested
 * `tf.grads` inside `tf.customGrad` breaks the tape).
 */

// Pinned inline (deno.json's import map is shared; the versions must stay together).
// deno-lint-ignore no-import-prefix
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
// deno-lint-ignore no-import-prefix
import "npm:@tensorflow/tfjs-backend-webgpu@4.22.0";
import type { ModelConfig } from "../config/model_config.ts";
import { parameterShapes, validateConfig } from "../config/derived.ts";

/** The TensorFlow.js namespace (the full `@tensorflow/tfjs` package, with gradients). */
export type Tf = typeof tf;

/** Hyper-parameters of {@link TfjsLlama.trainStep} other than the learning rate. */
export interface TfjsAdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay, applied to matrices (rank ≥ 2) only. */
  weightDecay: number;
  /** Global gradient-norm clip; 0 = off. */
  maxGradNorm: number;
}

/** Defaults: the same as our trainer's (`DEFAULT_ADAMW` in `lib/optim/adamw.ts`). */
const TFJS_ADAMW_DEFAULTS: TfjsAdamWOptions = {
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  maxGradNorm: 1.0,
};

/** Memory figures of the TF.js engine and WebGPU backend, in bytes. */
export interface TfjsMemory {
  /** Bytes of all live tensors (`tf.memory().numBytes`). */
  numBytes: number;
  /** Live tensor count. */
  numTensors: number;
  /** Bytes of GPU buffers in use by tensors (WebGPU backend). */
  numBytesInGPU?: number;
  /** Bytes of GPU buffers allocated, including the backend's pool of free buffers. */
  numBytesAllocatedInGPU?: number;
  /**
   * Peak live-tensor bytes during the last profiled step ({@link TfjsLlama.profileStep});
   * absent until one has run.
   */
  peakBytes?: number;
}

/**
 * Selects TF.js's WebGPU backend and waits until it is ready.
 * @returns the TF.js namespace, with the `webgpu` backend active.
 * @throws Error when WebGPU has no adapter (no `navigator.gpu`, or `requestAdapter` failed).
 */
export async function createTfjsPeer(): Promise<Tf> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) {
    throw new Error(
      "createTfjsPeer: navigator.gpu is missing; run Deno with WebGPU available " +
        "(Deno ≥ 1.39, a Vulkan driver such as Mesa lavapipe)",
    );
  }
  if (tf.getBackend() === "webgpu") {
    await tf.ready();
    return tf;
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend("webgpu");
  } catch (e) {
    throw new Error(`createTfjsPeer: TF.js WebGPU backend failed to initialize: ${e}`);
  }
  if (!ok || tf.getBackend() !== "webgpu") {
    throw new Error(
      "createTfjsPeer: TF.js could not select the webgpu backend (no WebGPU adapter? " +
        "check `navigator.gpu.requestAdapter()` and the Vulkan driver)",
    );
  }
  await tf.ready();
  return tf;
}

/** Features of `cfg` that {@link TfjsLlama} does not implement (empty when supported). */
function tfjsUnsupportedFeatures(cfg: ModelConfig): string[] {
  const out: string[] = [];
  if (cfg.activation !== "silu") out.push(`activation "${cfg.activation}" (only silu)`);
  if (cfg.tieEmbeddings) out.push("tieEmbeddings");
  if (cfg.qkvBias) out.push("qkvBias");
  if (cfg.embeddingScale) out.push("embeddingScale");
  if (cfg.normUnitOffset) out.push("normUnitOffset");
  if (cfg.postNorms) out.push("postNorms");
  if (cfg.attnSoftcap !== 0) out.push("attnSoftcap");
  if (cfg.finalSoftcap !== 0) out.push("finalSoftcap");
  if (cfg.slidingWindow !== 0) out.push("slidingWindow");
  if (cfg.headDim % 2 !== 0) out.push(`odd headDim ${cfg.headDim} (RoPE needs an even one)`);
  return out;
}

/** Per-sequence-length constants: RoPE tables and the additive causal mask. */
interface SeqConstants {
  /** (S, 1, hd) */
  cos: tf.Tensor3D;
  /** (S, 1, hd) */
  sin: tf.Tensor3D;
  /** (group·S, S): 0 where key j ≤ query i, −1e9 elsewhere; rows repeat per group. */
  mask: tf.Tensor2D;
}

/** One trainable parameter with its AdamW state. */
interface TfParam {
  name: string;
  shape: number[];
  value: tf.Variable;
  m?: tf.Variable;
  v?: tf.Variable;
}

let instanceCounter = 0;

/**
 * A Llama-family decoder (batch 1) in TF.js with AdamW training; the benchmark peer.
 * Create with {@link TfjsLlama.create}; free GPU memory with {@link TfjsLlama.dispose}.
 */
export class TfjsLlama {
  /** Parameters in `parameterShapes` order. */
  readonly params: TfParam[];
  /** Completed optimizer steps (bias correction uses step + 1). */
  step = 0;
  /** Peak live-tensor bytes of the last {@link profileStep}. */
  lastPeakBytes: number | undefined;
  private readonly byName: Map<string, TfParam>;
  private readonly seqConstants = new Map<number, SeqConstants>();
  private disposed = false;

  private constructor(
    readonly tf: Tf,
    readonly cfg: ModelConfig,
    params: TfParam[],
    readonly adamw: TfjsAdamWOptions,
  ) {
    this.params = params;
    this.byName = new Map(params.map((p) => [p.name, p]));
  }

  /**
   * Builds the model from f32 weights keyed by Hugging Face name, (out, in) layout.
   * @param tfns the TF.js namespace from {@link createTfjsPeer}.
   * @throws Error for an invalid or unsupported config, or a missing / wrongly sized weight.
   */
  static create(
    tfns: Tf,
    cfg: ModelConfig,
    weights: Map<string, Float32Array>,
    adamw: Partial<TfjsAdamWOptions> = {},
  ): TfjsLlama {
    validateConfig(cfg);
    const unsupported = tfjsUnsupportedFeatures(cfg);
    if (unsupported.length > 0) {
      throw new Error(
        `TfjsLlama: config "${cfg.name}" uses features the TF.js peer does not implement: ` +
          unsupported.join(", "),
      );
    }
    const opts = { ...TFJS_ADAMW_DEFAULTS, ...adamw };
    const shapes = parameterShapes(cfg);
    const known = new Set(shapes.map((s) => s.name));
    const extra = [...weights.keys()].filter((k) => !known.has(k));
    if (extra.length > 0) {
      throw new Error(`TfjsLlama: unknown weights for "${cfg.name}": ${extra.join(", ")}`);
    }
    const prefix = `tfjs_llama${instanceCounter++}/`;
    const params: TfParam[] = [];
    try {
      for (const { name, shape } of shapes) {
        const w = weights.get(name);
        if (!w) throw new Error(`TfjsLlama: missing weight "${name}" (shape [${shape}])`);
        const n = shape.reduce((a, b) => a * b, 1);
        if (w.length !== n) {
          throw new Error(
            `TfjsLlama: weight "${name}" has ${w.length} values, shape [${shape}] needs ${n}`,
          );
        }
        const init = tfns.tensor(w, shape, "float32");
        params.push({ name, shape, value: tfns.variable(init, true, prefix + name) });
        init.dispose();
      }
    } catch (e) {
      for (const p of params) p.value.dispose();
      throw e;
    }
    return new TfjsLlama(tfns, cfg, params, opts);
  }

  /**
   * Loss and every parameter gradient of one sequence (no update).
   * @param ids token ids, length S.
   * @param targets next-token targets, length S; −100 = ignored.
   * @returns the mean cross-entropy over valid targets and gradients keyed by HF name.
   */
  async lossAndGrads(
    ids: Int32Array,
    targets: Int32Array,
  ): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    const { loss, grads } = this.computeGrads(ids, targets);
    try {
      const out = new Map<string, Float32Array>();
      for (const p of this.params) {
        out.set(p.name, (await grads[p.value.name].data()) as Float32Array);
      }
      return { loss: (await loss.data())[0], grads: out };
    } finally {
      loss.dispose();
      for (const g of Object.values(grads)) g.dispose();
    }
  }

  /**
   * One training step: forward, backward (`tf.variableGrads`), global-norm clip and AdamW.
   * Waits for the loss value (one GPU→CPU read per step).
   * @returns the loss before the update.
   */
  async trainStep(ids: Int32Array, targets: Int32Array, lr: number): Promise<number> {
    if (!(Number.isFinite(lr) && lr >= 0)) {
      throw new Error(`TfjsLlama.trainStep: lr must be a finite number >= 0, got ${lr}`);
    }
    const { loss, grads } = this.computeGrads(ids, targets);
    try {
      this.applyAdamW(grads, lr);
      return (await loss.data())[0];
    } finally {
      loss.dispose();
      for (const g of Object.values(grads)) g.dispose();
    }
  }

  /**
   * {@link trainStep} under `tf.profile`, recording the peak live-tensor bytes of the step
   * in {@link lastPeakBytes}. Profiling syncs after every kernel: do not time this step.
   */
  async profileStep(ids: Int32Array, targets: Int32Array, lr: number): Promise<number> {
    const t = this.tf;
    const flag = "CHECK_COMPUTATION_FOR_ERRORS";
    const saved = t.env().getBool(flag);
    t.env().set(flag, false);
    try {
      let loss = NaN;
      const info = await t.profile(async () => {
        loss = await this.trainStep(ids, targets, lr);
      });
      this.lastPeakBytes = info.peakBytes;
      return loss;
    } finally {
      t.env().set(flag, saved);
    }
  }

  /** Current parameter values keyed by HF name (copies on the CPU). */
  async parameters(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const p of this.params) out.set(p.name, (await p.value.data()) as Float32Array);
    return out;
  }

  /** Memory figures from `tf.memory()` plus the peak of the last profiled step. */
  memory(): TfjsMemory {
    const m = this.tf.memory() as tf.MemoryInfo & {
      numBytesInGPU?: number;
      numBytesAllocatedInGPU?: number;
    };
    const out: TfjsMemory = { numBytes: m.numBytes, numTensors: m.numTensors };
    if (m.numBytesInGPU !== undefined) out.numBytesInGPU = m.numBytesInGPU;
    if (m.numBytesAllocatedInGPU !== undefined) {
      out.numBytesAllocatedInGPU = m.numBytesAllocatedInGPU;
    }
    if (this.lastPeakBytes !== undefined) out.peakBytes = this.lastPeakBytes;
    return out;
  }

  /** Frees every variable, optimizer state and cached constant. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const p of this.params) {
      p.value.dispose();
      p.m?.dispose();
      p.v?.dispose();
    }
    for (const c of this.seqConstants.values()) {
      c.cos.dispose();
      c.sin.dispose();
      c.mask.dispose();
    }
    this.seqConstants.clear();
  }

  private checkBatch(ids: Int32Array, targets: Int32Array): void {
    if (this.disposed) throw new Error("TfjsLlama: used after dispose()");
    const V = this.cfg.vocabSize;
    if (ids.length === 0 || ids.length !== targets.length) {
      throw new Error(
        `TfjsLlama: ids (${ids.length}) and targets (${targets.length}) must have the same ` +
          "non-zero length",
      );
    }
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i] >= 0 && ids[i] < V)) {
        throw new Error(`TfjsLlama: ids[${i}] = ${ids[i]} is outside [0, ${V})`);
      }
      const t = targets[i];
      if (t !== -100 && !(t >= 0 && t < V)) {
        throw new Error(`TfjsLlama: targets[${i}] = ${t} is outside [0, ${V}) and not -100`);
      }
    }
  }

  /** RoPE tables and causal mask for length S (cached; kept out of tidy scopes). */
  private constants(S: number): SeqConstants {
    const hit = this.seqConstants.get(S);
    if (hit) return hit;
    const t = this.tf;
    const { headDim: hd, ropeTheta: theta } = this.cfg;
    const group = this.cfg.heads / this.cfg.kvHeads;
    const half = hd / 2;
    const cos = new Float32Array(S * hd);
    const sin = new Float32Array(S * hd);
    for (let s = 0; s < S; s++) {
      for (let i = 0; i < half; i++) {
        const a = s * Math.pow(theta, -(2 * i) / hd);
        cos[s * hd + i] = cos[s * hd + i + half] = Math.cos(a);
        sin[s * hd + i] = sin[s * hd + i + half] = Math.sin(a);
      }
    }
    const mask = new Float32Array(group * S * S);
    for (let r = 0; r < group * S; r++) {
      const i = r % S;
      for (let j = i + 1; j < S; j++) mask[r * S + j] = -1e9;
    }
    const c: SeqConstants = {
      cos: t.keep(t.tensor3d(cos, [S, 1, hd])),
      sin: t.keep(t.tensor3d(sin, [S, 1, hd])),
      mask: t.keep(t.tensor2d(mask, [group * S, S])),
    };
    this.seqConstants.set(S, c);
    return c;
  }

  /** Loss (a scalar tensor) and gradients keyed by variable name; caller disposes them. */
  private computeGrads(
    ids: Int32Array,
    targets: Int32Array,
  ): { loss: tf.Scalar; grads: tf.NamedTensorMap } {
    this.checkBatch(ids, targets);
    const t = this.tf;
    const S = ids.length;
    const V = this.cfg.vocabSize;
    const consts = this.constants(S);
    let nValid = 0;
    const pick = new Float32Array(S * V);
    for (let i = 0; i < S; i++) {
      if (targets[i] !== -100) {
        nValid++;
        pick[i * V + targets[i]] = 1;
      }
    }
    const idsT = t.tensor1d(ids, "int32");
    const pickT = t.tensor2d(pick, [S, V]);
    try {
      const vars = this.params.map((p) => p.value);
      const { value, grads } = t.variableGrads(
        () => this.lossTensor(idsT, pickT, nValid, consts),
        vars,
      );
      return { loss: value, grads };
    } finally {
      idsT.dispose();
      pickT.dispose();
    }
  }

  private p(name: string): tf.Variable {
    const p = this.byName.get(name);
    if (!p) throw new Error(`TfjsLlama: missing parameter "${name}"`);
    return p.value;
  }

  /** Forward pass to the mean cross-entropy (inside the gradient tape). */
  private lossTensor(
    ids: tf.Tensor1D,
    pick: tf.Tensor2D,
    nValid: number,
    c: SeqConstants,
  ): tf.Scalar {
    const t = this.tf;
    const cfg = this.cfg;
    const S = ids.shape[0];
    const { heads: H, kvHeads: KV, headDim: hd } = cfg;
    const group = H / KV;
    const half = hd / 2;
    /** x·Wᵀ with W (out, in). */
    const linear = (x: tf.Tensor2D, name: string) =>
      t.matMul(x, this.p(name), false, true) as tf.Tensor2D;
    const rmsnorm = (x: tf.Tensor2D, name: string) => {
      const ms = t.mean(t.square(x), -1, true);
      return t.mul(t.mul(x, t.rsqrt(t.add(ms, cfg.rmsEps))), this.p(name)) as tf.Tensor2D;
    };
    /** HF rotate_half RoPE on x (S, nh, hd). */
    const rope = (x: tf.Tensor3D, nh: number) => {
      const x1 = t.slice(x, [0, 0, 0], [S, nh, half]);
      const x2 = t.slice(x, [0, 0, half], [S, nh, half]);
      const rot = t.concat([t.neg(x2), x1], 2);
      return t.add(t.mul(x, c.cos), t.mul(rot, c.sin)) as tf.Tensor3D;
    };

    let h = t.gather(this.p("model.embed_tokens.weight"), ids) as tf.Tensor2D; // (S, d)
    for (let i = 0; i < cfg.layers; i++) {
      const pre = `model.layers.${i}.`;
      const a = rmsnorm(h, pre + "input_layernorm.weight");
      // Queries scaled before the score matmul; heads h = g·group + j share kv head g.
      const q = rope(
        t.reshape(t.mul(linear(a, pre + "self_attn.q_proj.weight"), cfg.attnScale), [S, H, hd]),
        H,
      );
      const k = rope(t.reshape(linear(a, pre + "self_attn.k_proj.weight"), [S, KV, hd]), KV);
      const v = t.reshape(linear(a, pre + "self_attn.v_proj.weight"), [S, KV, hd]);
      const qg = t.reshape(t.transpose(q, [1, 0, 2]), [KV, group * S, hd]);
      const kg = t.transpose(k, [1, 0, 2]); // (KV, S, hd)
      const vg = t.transpose(v, [1, 0, 2]); // (KV, S, hd)
      const scores = t.add(t.matMul(qg, kg, false, true), c.mask); // (KV, group·S, S)
      const probs = t.softmax(scores);
      const o = t.matMul(probs, vg); // (KV, group·S, hd)
      const merged = t.reshape(t.transpose(t.reshape(o, [H, S, hd]), [1, 0, 2]), [S, H * hd]);
      h = t.add(h, linear(merged as tf.Tensor2D, pre + "self_attn.o_proj.weight"));
      const b = rmsnorm(h, pre + "post_attention_layernorm.weight");
      const gate = linear(b, pre + "mlp.gate_proj.weight");
      const up = linear(b, pre + "mlp.up_proj.weight");
      const act = t.mul(t.mul(gate, t.sigmoid(gate)), up) as tf.Tensor2D;
      h = t.add(h, linear(act, pre + "mlp.down_proj.weight"));
    }
    const z = linear(rmsnorm(h, "model.norm.weight"), "lm_head.weight"); // (S, V)
    const nll = t.neg(t.sum(t.mul(t.logSoftmax(z), pick)));
    return t.mul(nll, nValid > 0 ? 1 / nValid : 0) as tf.Scalar;
  }

  /** Global-norm clip and one AdamW step on every parameter (all on the GPU). */
  private applyAdamW(grads: tf.NamedTensorMap, lr: number): void {
    const t = this.tf;
    const o = this.adamw;
    const step = ++this.step;
    const bc1 = 1 - o.beta1 ** step;
    const bc2 = 1 - o.beta2 ** step;
    t.tidy(() => {
      let scale: tf.Scalar | number = 1;
      if (o.maxGradNorm > 0) {
        let sq: tf.Tensor = t.scalar(0);
        for (const p of this.params) sq = t.add(sq, t.sum(t.square(grads[p.value.name])));
        scale = t.minimum(1, t.div(o.maxGradNorm, t.add(t.sqrt(sq), 1e-6))) as tf.Scalar;
      }
      for (const p of this.params) {
        const g = t.mul(grads[p.value.name], scale);
        p.m ??= t.variable(t.zerosLike(p.value), false);
        p.v ??= t.variable(t.zerosLike(p.value), false);
        const m = t.add(t.mul(p.m, o.beta1), t.mul(g, 1 - o.beta1));
        const v = t.add(t.mul(p.v, o.beta2), t.mul(t.square(g), 1 - o.beta2));
        p.m.assign(m);
        p.v.assign(v);
        const wd = p.shape.length >= 2 ? o.weightDecay : 0;
        const decayed = wd > 0 ? t.mul(p.value, 1 - lr * wd) : p.value;
        const update = t.div(t.mul(m, lr / bc1), t.add(t.sqrt(t.div(v, bc2)), o.eps));
        p.value.assign(t.sub(decayed, update));
      }
    });
  }
}

/** Result of {@link benchTfjsTrainStep}. */
export interface TfjsBenchResult {
  /** S · steps / wall time of the timed steps. */
  tokensPerSec: number;
  /** Mean wall time of one timed step (forward, backward, AdamW, loss read). */
  msPerStep: number;
  /** Peak live-tensor bytes of one profiled (untimed) step; null if profiling failed. */
  peakBytes: number | null;
  /** GPU bytes allocated by the WebGPU backend after the run (includes its buffer pool). */
  gpuAllocatedBytes: number | null;
  /** Loss of every timed step. */
  losses: number[];
}

/** Options of {@link benchTfjsTrainStep}. */
export interface TfjsBenchOptions {
  /** Untimed steps first (shader compilation); default 2. */
  warmup?: number;
  /** Learning rate; default 3e-3. */
  lr?: number;
  /** Seed of weights and tokens; default 1. */
  seed?: number;
  /** Standard deviation of the random matrices; default 0.02. */
  initStd?: number;
}

/** Deterministic uniform [0, 1) generator (mulberry32). */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random weights for `cfg`: N(0, std²) matrices (Box–Muller), norm weights 1. */
function tfjsRandomWeights(
  cfg: ModelConfig,
  seed = 1,
  std = 0.02,
): Map<string, Float32Array> {
  const r = uniform(seed);
  const out = new Map<string, Float32Array>();
  for (const { name, shape } of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const w = new Float32Array(n);
    if (shape.length === 1) w.fill(1);
    else {
      for (let i = 0; i < n; i++) {
        w[i] = std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      }
    }
    out.set(name, w);
  }
  return out;
}

/**
 * Times TF.js training steps of `cfg` at sequence length S (batch 1) on random tokens:
 * `warmup` untimed steps, one profiled untimed step (peak bytes), then `steps` timed steps,
 * each ending with a read of its loss.
 * @throws Error if no WebGPU adapter is available or `cfg` is unsupported.
 */
export async function benchTfjsTrainStep(
  cfg: ModelConfig,
  S: number,
  steps: number,
  opts: TfjsBenchOptions = {},
): Promise<TfjsBenchResult> {
  if (!(Number.isInteger(S) && S > 0)) throw new Error(`benchTfjsTrainStep: bad S ${S}`);
  if (!(Number.isInteger(steps) && steps > 0)) {
    throw new Error(`benchTfjsTrainStep: steps must be a positive integer, got ${steps}`);
  }
  const { warmup = 2, lr = 3e-3, seed = 1, initStd = 0.02 } = opts;
  const t = await createTfjsPeer();
  const model = TfjsLlama.create(t, cfg, tfjsRandomWeights(cfg, seed, initStd));
  try {
    const r = uniform(seed + 1000);
    const tokens = Int32Array.from({ length: S + 1 }, () => Math.floor(r() * cfg.vocabSize));
    const ids = tokens.subarray(0, S);
    const targets = tokens.subarray(1);
    for (let i = 0; i < warmup; i++) await model.trainStep(ids, targets, lr);
    let peakBytes: number | null = null;
    try {
      await model.profileStep(ids, targets, lr);
      peakBytes = model.lastPeakBytes ?? null;
    } catch {
      peakBytes = null;
    }
    const losses: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) losses.push(await model.trainStep(ids, targets, lr));
    const ms = performance.now() - t0;
    const mem = model.memory();
    return {
      tokensPerSec: (S * steps) / (ms / 1000),
      msPerStep: ms / steps,
      peakBytes,
      gpuAllocatedBytes: mem.numBytesAllocatedInGPU ?? null,
      losses,
    };
  } finally {
    model.dispose();
  }
}
