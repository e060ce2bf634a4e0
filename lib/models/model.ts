/**
 * A Llama-family model on a device: parameters with Hugging Face names, the layers built
 * from a {@link ModelConfig}, and one forward + backward over a sequence.
 *
 * {@link Model.build} builds the plain model from the policy's accounting profile
 * (`lib/profiles/`: ours, or `hf` — our layers plus the buffers transformers + PyTorch
 * allocate), then lets the policy's techniques (`lib/techniques/`) transform it in declared
 * order: recomputation wraps each block, the MsT MLP wraps each block's MLP, the MsT head
 * replaces the head, checkpoint offload moves block inputs to the host, ZeRO and Ulysses build
 * one rank of a multi-GPU plan (meta device only), mixed precision adds f32 master weights.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import type { ModelConfig } from "../config/model_config.ts";
import { layerWindow, parameterShapes, validateConfig } from "../config/derived.ts";
import type { Checkpointed, CheckpointSaved } from "../mst/checkpoint.ts";
import type { MiniSequence } from "../mst/mini_sequence.ts";
import { MiniSequenceHeadLoss } from "../mst/mini_sequence_head.ts";
import { DecoderBlock } from "../nn/decoder_block.ts";
import { Embedding } from "../nn/embedding.ts";
import type { SeqLayer } from "../nn/layer.ts";
import type { HeadLoss } from "../nn/lm_head_loss.ts";
import { disposeAll, Parameter } from "../nn/parameter.ts";
import type { RMSNorm } from "../nn/rmsnorm.ts";
import { embeddingGradIndex } from "../ops/embedding.ts";
import { accountingProfile } from "../profiles/registry.ts";
import type { ZeroRank } from "../sharding/zero.ts";
import { activeTechniques, type MemoryPolicy, validatePolicy } from "../techniques/policy.ts";
import type { BlockAdapters, ModelUnderConstruction } from "../techniques/technique.ts";
import { Nf4Weight } from "../ops/nf4_matmul.ts";
import { quantizeNf4 } from "../reference/nf4.ts";
import { gaussian } from "../util/random.ts";
import type { Batch } from "../data/batch.ts";

export type { Batch } from "../data/batch.ts";

/** How a model's weights are initialized (the memory policy is separate: {@link MemoryPolicy}). */
export interface InitOptions {
  /** Seed of the deterministic initialization (default 0). */
  seed?: number;
  /** Initial weights by Hugging Face name (e.g. from a checkpoint); others are initialized. */
  weights?: Map<string, Float32Array>;
  /** Std of the normal initialization of matrices (default 0.02). */
  initStd?: number;
}

/** The mini-sequence counts M a model last used, per part (`null`: the part is unchunked). */
export interface ResolvedChunks {
  /** Largest M used by a block's MLP in the last forward or recomputation. */
  mlp: number | null;
  /** M used by the LM head in the last forward. */
  head: number | null;
}

/** Options of {@link Model.lossAndGrads}. */
export interface LossOptions {
  /** Divide the summed loss by this (default: number of valid targets of the batch). */
  lossDenominator?: number;
  /** Called when a parameter's gradient is complete for this batch (optimizer in backward). */
  onGradReady?: (p: Parameter) => void;
  /**
   * Multiply the loss, hence every gradient, by this (mixed precision's loss scale; default
   * 1). The returned loss sum is not scaled.
   */
  lossScale?: number;
}

/** The model on a device. */
export class Model {
  /** Every parameter, in the order of `parameterShapes(cfg)`. */
  readonly params: Parameter[] = [];
  /** The parameters by Hugging Face name. */
  readonly byName = new Map<string, Parameter>();
  /** Token embedding (`model.embed_tokens.weight`). */
  readonly embedding: Embedding;
  /** The decoder blocks, in order (wrapped with recomputation when `checkpoint` is set). */
  readonly blocks: SeqLayer[] = [];
  /** Per block, its parameters (those named `model.layers.<i>.…`). */
  readonly blockParams: Parameter[][] = [];
  /** The final RMSNorm (`model.norm.weight`). */
  readonly finalNorm: RMSNorm;
  /** LM head + cross-entropy: the mini-sequence head when `mst.head` is set. */
  readonly head: HeadLoss;
  /** `lm_head.weight` (V, d), or the embedding weight when embeddings are tied. */
  readonly headWeight: Parameter;
  /** The mini-sequence MLPs, one per block, when `mst.mlp` is set. */
  readonly #mstMlps: MiniSequence<unknown>[] = [];
  /**
   * This rank's ZeRO state when the policy plans a multi-GPU rank (`policy.parallel`, meta
   * device only); null for a single device.
   */
  readonly zero: ZeroRank | null = null;
  /** The checkpointed blocks whose inputs go to the host (policy `offload`), else empty. */
  readonly #offloaded: Checkpointed<unknown>[] = [];
  /**
   * The seed the weights not given were initialised from (a LoRA checkpoint rebuilds its frozen
   * base from it).
   */
  readonly seed: number;

  private constructor(
    readonly dev: Device,
    readonly cfg: ModelConfig,
    /** The memory policy the model was built under (the trainer follows it too). */
    readonly policy: MemoryPolicy,
    m: ModelUnderConstruction,
    parts: { embedding: Embedding; finalNorm: RMSNorm; headWeight: Parameter; head: HeadLoss },
  ) {
    this.params.push(...m.params);
    for (const p of m.params) this.byName.set(p.name, p);
    this.blocks.push(...m.blocks);
    this.blockParams.push(...m.blockParams);
    this.#mstMlps.push(...m.mstMlps);
    this.#offloaded.push(...m.offloaded);
    this.zero = m.zero;
    this.seed = m.init.seed;
    this.embedding = parts.embedding;
    this.finalNorm = parts.finalNorm;
    this.headWeight = parts.headWeight;
    this.head = parts.head;
  }

  /**
   * Builds the model on `dev` under a memory policy (default: standard); weights are
   * initialized deterministically unless given in `init`. The plain model comes from the
   * policy's accounting profile (`lib/profiles/`); the policy's techniques
   * (`lib/techniques/`) transform it in declared order: `configure` before anything is
   * allocated, `wrapMlp` and `wrapBlock` per block, `afterBlocks`, then `head`.
   */
  static build(
    dev: Device,
    cfg: ModelConfig,
    policy: MemoryPolicy = {},
    init: InitOptions = {},
  ): Model {
    validateConfig(cfg);
    validatePolicy(policy, dev.floats);
    checkFitsDevice(dev, cfg);
    const techniques = activeTechniques(policy, dev.floats);
    const m: ModelUnderConstruction = {
      dev,
      cfg,
      policy,
      init: { seed: init.seed ?? 0, weights: init.weights },
      layers: accountingProfile(policy.framework).layers,
      settings: {
        masterWeights: false,
        sp: 1,
        partitioned: null,
        parallel: null,
        keepAttention: false,
        frozenBase: false,
        nf4Projections: false,
      },
      params: [],
      blockParams: [],
      blocks: [],
      mstMlps: [],
      offloaded: [],
      checkpointed: [],
      zero: null,
    };
    for (const t of techniques) t.build?.configure?.(m);
    createParameters(m, init);
    const byName = new Map(m.params.map((p) => [p.name, p]));
    const P = (n: string) => byName.get(n)!; // every name below is one of parameterShapes'
    // a projection's weight: the parameter, or its NF4 storage (QLoRA)
    const W = (n: string) => P(n).quantized ?? P(n);
    const norm = (n: string) => m.layers.norm(dev, n, P(n), cfg.rmsEps, cfg.normUnitOffset);
    const embedding = new Embedding(
      dev,
      P("model.embed_tokens.weight"),
      cfg.embeddingScale ? Math.sqrt(cfg.hidden) : 1,
    );
    for (let i = 0; i < cfg.layers; i++) {
      const pre = `model.layers.${i}.`;
      let adapters: BlockAdapters | undefined;
      for (const t of techniques) adapters = t.build?.adapters?.(m, i) ?? adapters;
      const attn = m.layers.attention(
        dev,
        `${pre}self_attn`,
        cfg,
        {
          q: W(pre + "self_attn.q_proj.weight"),
          k: W(pre + "self_attn.k_proj.weight"),
          v: W(pre + "self_attn.v_proj.weight"),
          o: W(pre + "self_attn.o_proj.weight"),
          qBias: cfg.qkvBias ? P(pre + "self_attn.q_proj.bias") : undefined,
          kBias: cfg.qkvBias ? P(pre + "self_attn.k_proj.bias") : undefined,
          vBias: cfg.qkvBias ? P(pre + "self_attn.v_proj.bias") : undefined,
          ...(adapters ? { lora: adapters.attention } : {}),
        },
        layerWindow(cfg, i),
        m.settings.sp,
      );
      let mlp = m.layers.mlp(
        dev,
        `${pre}mlp`,
        W(pre + "mlp.gate_proj.weight"),
        W(pre + "mlp.up_proj.weight"),
        W(pre + "mlp.down_proj.weight"),
        cfg.activation,
        adapters?.mlp,
      );
      for (const t of techniques) mlp = t.build?.wrapMlp?.(m, mlp, i) ?? mlp;
      const block = new DecoderBlock(
        dev,
        `model.layers.${i}`,
        norm(pre + "input_layernorm.weight"),
        attn,
        norm(pre + (cfg.postNorms ? "pre_feedforward" : "post_attention") + "_layernorm.weight"),
        mlp,
        cfg.postNorms ? norm(pre + "post_attention_layernorm.weight") : undefined,
        cfg.postNorms ? norm(pre + "post_feedforward_layernorm.weight") : undefined,
      );
      m.blockParams.push(m.params.filter((p) => p.name.startsWith(pre)));
      let wrapped: SeqLayer = block;
      for (const t of techniques) wrapped = t.build?.wrapBlock?.(m, wrapped, i) ?? wrapped;
      m.blocks.push(wrapped);
    }
    for (const t of techniques) t.build?.afterBlocks?.(m);
    const finalNorm = norm("model.norm.weight");
    const headWeight = cfg.tieEmbeddings ? P("model.embed_tokens.weight") : P("lm_head.weight");
    let head: HeadLoss | undefined;
    for (const t of techniques) head = t.build?.head?.(m, headWeight) ?? head;
    head ??= m.layers.head(dev, "lm_head", headWeight, cfg.finalSoftcap);
    return new Model(dev, cfg, policy, m, { embedding, finalNorm, headWeight, head });
  }

  /**
   * The M each chunked part used last (after a step: the M actually run, after `"auto"` and
   * the cap at S).
   */
  resolvedChunks(): ResolvedChunks {
    const head = this.head instanceof MiniSequenceHeadLoss ? this.head.lastChunks : null;
    const mlp = this.#mstMlps.length ? Math.max(...this.#mstMlps.map((m) => m.lastChunks)) : null;
    return { mlp, head };
  }

  /** A parameter by Hugging Face name. */
  param(name: string): Parameter {
    const p = this.byName.get(name);
    if (!p) throw new Error(`model ${this.cfg.name} has no parameter "${name}"`);
    return p;
  }

  /**
   * Forward and backward of one sequence. Returns the summed loss (1) on the device (divide by
   * the denominator on the host) and leaves the parameter gradients accumulated.
   * Phases "forward" and "backward" are labelled in the memory timeline. Asynchronous only for
   * checkpoint offload, which waits for each block's copy to and from the host; otherwise the
   * work is encoded without waiting for the device.
   */
  async lossAndGrads(
    batch: Batch,
    opts: LossOptions = {},
  ): Promise<{ lossSum: Tensor; denominator: number }> {
    const cfg = this.cfg;
    const denominator = opts.lossDenominator ?? this.#validTargets(batch);
    const gradScale = denominator > 0 ? (opts.lossScale ?? 1) / denominator : 0;
    const f = await this.#forward(batch, "forward", gradScale);

    this.dev.setPhase("backward");
    const ready = opts.onGradReady ?? (() => {});
    const dy = this.head.backward(f.headSaved, gradScale);
    this.zero?.release([this.headWeight]);
    if (!cfg.tieEmbeddings) ready(this.headWeight);
    let dh = this.finalNorm.backward(dy, f.normSaved);
    dy.dispose();
    ready(this.finalNorm.weight);
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      // offload: the block's input comes back from the host just before its recomputation
      await this.#offloaded[i]?.restore(f.blockSaved[i] as CheckpointSaved);
      const next = this.blocks[i].backward(dh, f.blockSaved[i]);
      dh.dispose();
      dh = next;
      this.blockParams[i].forEach(ready);
    }
    this.zero?.gather([this.embedding.weight]);
    this.embedding.backward(dh, f.index!);
    this.zero?.release([this.embedding.weight]);
    dh.dispose();
    f.index!.dispose();
    ready(this.embedding.weight);
    return { lossSum: f.lossSum, denominator };
  }

  /**
   * Forward only (evaluation): the summed loss (1) and the number of valid targets. Saved
   * state is freed block by block; no gradient is touched.
   */
  async loss(batch: Batch): Promise<{ lossSum: Tensor; denominator: number }> {
    const denominator = this.#validTargets(batch);
    const { lossSum } = await this.#forward(batch, "eval");
    this.dev.setPhase("");
    return { lossSum, denominator };
  }

  /** Checks a batch; returns its number of targets ≠ −100. */
  #validTargets(batch: Batch): number {
    const S = batch.ids.length;
    const V = this.cfg.vocabSize;
    if (batch.targets.length !== S) {
      throw new Error(`batch: ${S} ids but ${batch.targets.length} targets`);
    }
    if (S === 0) throw new Error("batch: the sequence is empty");
    let nValid = 0;
    for (const t of batch.targets) {
      if (t === -100) continue;
      if (!Number.isInteger(t) || t < 0 || t >= V) {
        throw new Error(
          `batch: target ${t} is outside 0..${V - 1} (use -100 to ignore a position)`,
        );
      }
      nValid++;
    }
    return nValid;
  }

  /**
   * The forward pass. In phase "forward" (training) it keeps every layer's saved state and
   * the embedding's gradient index, and passes `gradScale` to the head; in phase "eval" it
   * frees saved state as it goes. With offload, each block's checkpoint goes to the host right
   * after the block's forward.
   */
  async #forward(batch: Batch, phase: "forward" | "eval", gradScale?: number) {
    const dev = this.dev;
    const S = batch.ids.length;
    const train = phase === "forward";
    const keep = <T>(saved: T): T | null => {
      if (train) return saved;
      disposeAll(saved);
      return null;
    };
    dev.setPhase(phase);
    const ids = dev.upload(batch.ids, [S], { tag: "data", dtype: "i32", name: "ids" });
    const targets = dev.upload(batch.targets, [S], { tag: "data", dtype: "i32", name: "targets" });
    const index = train ? embeddingGradIndex(dev, batch.ids, this.cfg.vocabSize) : null;
    this.zero?.gather([this.embedding.weight]);
    let h = this.embedding.forward(ids); // (S, d)
    this.zero?.release([this.embedding.weight]);
    ids.dispose();
    const blockSaved: unknown[] = [];
    for (const [i, block] of this.blocks.entries()) {
      const f = block.forward(h);
      h.dispose();
      h = f.out;
      if (train) await this.#offloaded[i]?.offload(f.saved as CheckpointSaved);
      blockSaved.push(keep(f.saved));
    }
    const fn = this.finalNorm.forward(h);
    h.dispose();
    const normSaved = keep(fn.saved);
    // ZeRO-3: the head's weight stays gathered from its forward to its backward (adjacent);
    // evaluation releases it at once
    this.zero?.gather([this.headWeight]);
    const head = this.head.forward(fn.out, targets, gradScale);
    if (!train) this.zero?.release([this.headWeight]);
    fn.out.dispose();
    targets.dispose();
    const headSaved = keep(head.saved);
    return { lossSum: head.lossSum, index, blockSaved, normSaved: normSaved!, headSaved };
  }

  /** Mean loss over valid targets of several batches (forward only). */
  async evaluate(batches: Batch[]): Promise<number> {
    let sum = 0;
    let n = 0;
    for (const b of batches) {
      const r = await this.loss(b);
      sum += (await this.dev.read(r.lossSum))[0];
      r.lossSum.dispose();
      n += r.denominator;
    }
    return n > 0 ? sum / n : 0;
  }

  /**
   * Reads every weight back (Hugging Face names; the f32 master weights in mixed precision); an
   * NF4 base (QLoRA) is left out.
   */
  async readWeights(): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const p of this.params) {
      if (p.quantized) continue; // an NF4 base (QLoRA) holds codes, not weights
      out.set(p.name, { shape: [...p.shape], data: await this.dev.readF32(p.master ?? p.value) });
    }
    return out;
  }

  /** Frees every parameter, gradient and optimizer state. */
  dispose(): void {
    this.zero?.dispose();
    for (const p of this.params) p.dispose();
  }
}

/**
 * Creates every parameter in `parameterShapes` order: given weights, else the deterministic
 * initialization (norm weights 1, or 0 with the unit offset; biases 0; matrices normal with
 * std `initStd`). With mixed precision each gets its f32 master first (tag `optimizer`); under
 * ZeRO-3 a partitioned, uninitialized parameter holds only the rank's partition.
 */
function createParameters(m: ModelUnderConstruction, opts: InitOptions): void {
  const { dev, cfg, settings } = m;
  const normal = gaussian(opts.seed ?? 0);
  const std = opts.initStd ?? 0.02;
  for (const { name, shape } of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const given = opts.weights?.get(name);
    let data: Float32Array | null = null;
    if (given) {
      if (given.length !== n) {
        throw new Error(
          `weights for "${name}": ${given.length} values, expected ${n} [${shape.join(", ")}]`,
        );
      }
      data = given;
    } else if (settings.partitioned?.(shape)) {
      m.params.push(new Parameter(name, null, shape)); // ZeRO-3: only the rank's partition
      continue;
    } else if (dev.kind !== "meta") {
      data = new Float32Array(n);
      if (name.endsWith("norm.weight") || name.endsWith("layernorm.weight")) {
        data.fill(cfg.normUnitOffset ? 0 : 1);
      } else if (!name.endsWith(".bias")) {
        for (let i = 0; i < n; i++) data[i] = normal() * std;
      }
    }
    if (settings.nf4Projections && NF4_PROJECTION.test(name)) {
      // QLoRA: the frozen projection weight in NF4, quantised on the host (bitsandbytes' scheme)
      const p = new Parameter(name, null, shape);
      p.frozen = true;
      p.quantized = data
        ? Nf4Weight.upload(dev, quantizeNf4(data, shape), { name })
        : Nf4Weight.alloc(dev, shape[0], shape[1], { name });
      m.params.push(p);
      continue;
    }
    const master = !settings.masterWeights || settings.frozenBase
      ? null
      : data
      ? dev.upload(data, shape, { tag: "optimizer", name: `${name}.master`, dtype: "f32" })
      : dev.tensor(shape, { tag: "optimizer", name: `${name}.master`, dtype: "f32" });
    const value: Tensor = data
      ? dev.upload(data, shape, { tag: "weights", name })
      : dev.tensor(shape, { tag: "weights", name });
    const p = new Parameter(name, value);
    p.master = master;
    p.frozen = settings.frozenBase;
    m.params.push(p);
  }
}

/** The blocks' seven projection weights (what QLoRA stores in NF4, as bitsandbytes does). */
const NF4_PROJECTION = /^model\.layers\.\d+\.(self_attn\.[qkvo]|mlp\.(gate|up|down))_proj\.weight$/;

/**
 * Throws a clear error when a parameter
 cannot be bound on the device (e.g. a full-size
 * preset on a software adapter), before any weight is generated.
 */
function checkFitsDevice(dev: Device, cfg: ModelConfig): void {
  const limit = Math.min(dev.limits.maxStorageBufferBindingSize, dev.limits.maxBufferSize);
  if (!Number.isFinite(limit)) return;
  const elem = dev.floats === "f32" ? 4 : 2;
  const big = parameterShapes(cfg)
    .map((p) => ({ ...p, bytes: p.shape.reduce((a, b) => a * b, 1) * elem }))
    .filter((p) => p.bytes > limit);
  if (big.length > 0) {
    throw new Error(
      `${cfg.name} does not fit this ${dev.kind} device: ${big[0].name} [${
        big[0].shape.join(", ")
      }] needs ${big[0].bytes} bytes in one buffer, above its limit of ${limit} ` +
        `(${big.length} parameter(s) too large). Plan full-size models with \`deno task plan\` ` +
        `(meta device) and train the *-tiny presets here.`,
    );
  }
}
