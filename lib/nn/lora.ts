/**
 * LoRA: a frozen linear layer plus a trainable low-rank update, with PEFT's semantics
 * (`peft.tuners.lora.layer.Linear`, dropout 0):
 *
 *     y = x·Wᵀ (+ bias) + s·(x·Aᵀ)·Bᵀ,   s = alpha / r   (rsLoRA: alpha / √r)
 *
 * W (N, K) is the frozen base — f32, f16 or NF4 ({@link Nf4Weight}) — and gets no gradient and
 * no optimizer state; A (r, K) and B (N, r) are the adapters, ordinary {@link Parameter}s that
 * AdamW steps. PEFT's initialisation: A Kaiming-uniform with a = √5 (bound 1/√K), B zeros, so
 * the adapted layer starts as the base.
 *
 * Saved for backward (tag `activations`): a view of the input x (S, K) — dA = s·(dy·B)ᵀ·x needs
 * it, and the caller's tensor is shared, not copied — and u = s·(x·Aᵀ) (S, r), named
 * `<name>.lora_u`, for dB = dyᵀ·u. u is kept rather than recomputed: S·r elements against a
 * second (S, K)·(K, r) product in backward. Transients: in forward u itself (it becomes the
 * saved one); in backward g = s·(dy·B) (S, r), `<name>.lora_g`, freed before return.
 */

import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
import { scaleInPlace } from "../ops/add.ts";
import { linearBackwardWeight } from "../ops/linear.ts";
import { matmul } from "../ops/matmul.ts";
import { nf4Linear, nf4LinearInputGrad, Nf4Weight } from "../ops/nf4_matmul.ts";
import { ceilDiv, grid1d } from "../ops/util.ts";
import { rng } from "../util/random.ts";
import { type Forward, type SeqLayer, view } from "./layer.ts";
import { Parameter } from "./parameter.ts";

/** The LoRA scaling s: alpha / r, or alpha / √r with rsLoRA (PEFT's `update_layer`). */
export function loraScaling(r: number, alpha: number, rslora = false): number {
  if (!Number.isInteger(r) || r <= 0) {
    throw new Error(`LoRA rank r must be a positive integer, got ${r}`);
  }
  if (!Number.isFinite(alpha)) throw new Error(`LoRA alpha must be finite, got ${alpha}`);
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * PEFT's initial A (r, K): `nn.init.kaiming_uniform_(A, a=math.sqrt(5))`, i.e. uniform in
 * [-b, b) with b = gain·√(3/fan_in), gain = √(2/(1 + a²)), so b = 1/√K; drawn from the
 * seeded generator (`lib/util/random.ts`), not torch's.
 */
export function loraInitA(r: number, K: number, seed: number): Float32Array {
  const bound = Math.sqrt(6 / ((1 + 5) * K));
  const u = rng(seed);
  return Float32Array.from({ length: r * K }, () => (u() * 2 - 1) * bound);
}

/** What {@link LoraLinear} keeps for backward. */
export interface LoraSaved {
  /** A view of the input (S, K). */
  x: Tensor;
  /** u = s·(x·Aᵀ) (S, r). */
  u: Tensor;
}

/** Options of {@link LoraLinear.create}. */
export interface LoraLinearOptions {
  /** Rank r. */
  r: number;
  /** alpha (PEFT's `lora_alpha`). */
  alpha: number;
  /** rsLoRA scaling alpha/√r (PEFT's `use_rslora`). Default false. */
  rslora?: boolean;
  /** Seed of A's initialisation. */
  seed: number;
  /** Frozen bias of the base layer (no gradient; PEFT's `bias="none"`). */
  bias?: Parameter;
}

/**
 * The adapters A (r, K) and B (N, r) of module `name` (e.g.
 * `model.layers.0.self_attn.q_proj`), named `<name>.lora_A.weight` and `<name>.lora_B.weight`
 * (PEFT's names inside the model without the adapter name); values tag `weights` holding
 * `a` and `b` (default: PEFT's initialisation), and on a mixed-precision (`f16`) device an f32
 * master each (tag `optimizer`), as the model's parameters have.
 */
export function createLoraParameters(
  dev: Device,
  name: string,
  shape: { r: number; N: number; K: number },
  init: { seed: number; a?: Float32Array; b?: Float32Array },
): { a: Parameter; b: Parameter } {
  const { r, N, K } = shape;
  for (const [k, v] of Object.entries(shape)) {
    if (!Number.isInteger(v) || v <= 0) {
      throw new Error(`LoRA "${name}": ${k} must be a positive integer, got ${v}`);
    }
  }
  const make = (pname: string, pshape: number[], data: Float32Array | undefined) => {
    const n = pshape[0] * pshape[1];
    if (data && data.length !== n) {
      throw new Error(
        `LoRA "${pname}": ${data.length} values for shape [${pshape.join(", ")}] (${n})`,
      );
    }
    const meta = dev.kind === "meta";
    const master = dev.floatType !== "f16"
      ? null
      : meta || !data
      ? dev.zeros(pshape, { tag: "optimizer", name: `${pname}.master`, dtype: "f32" })
      : dev.upload(data, pshape, { tag: "optimizer", name: `${pname}.master`, dtype: "f32" });
    const value = meta || !data
      ? dev.zeros(pshape, { tag: "weights", name: pname })
      : dev.upload(data, pshape, { tag: "weights", name: pname });
    const p = new Parameter(pname, value);
    p.master = master;
    return p;
  };
  const aData = init.a ?? (dev.kind === "meta" ? undefined : loraInitA(r, K, init.seed));
  const a = make(`${name}.lora_A.weight`, [r, K], aData);
  const b = make(`${name}.lora_B.weight`, [N, r], init.b);
  return { a, b };
}

/** A frozen linear layer (f32/f16 {@link Parameter} or {@link Nf4Weight}) with a LoRA adapter. */
export class LoraLinear implements SeqLayer<LoraSaved> {
  readonly rowWise = true;
  /** Output features N. */
  readonly outFeatures: number;
  /** Input features K. */
  readonly inFeatures: number;
  /** Rank r. */
  readonly r: number;

  /**
   * A frozen base with its adapters (build it with {@link createLoraParameters}' A and B).
   *
   * @param dev The device.
   * @param name Module name, e.g. `model.layers.0.self_attn.q_proj`.
   * @param base Frozen weight (N, K): a Parameter (f32 or f16 storage) or an NF4 weight.
   * @param a Adapter A (r, K).
   * @param b Adapter B (N, r).
   * @param scaling s ({@link loraScaling}).
   * @param bias Frozen bias (N), optional.
   */
  constructor(
    readonly dev: Device,
    readonly name: string,
    readonly base: Parameter | Nf4Weight,
    readonly a: Parameter,
    readonly b: Parameter,
    readonly scaling: number,
    readonly bias?: Parameter,
  ) {
    const [N, K] = base instanceof Nf4Weight ? [base.rows, base.cols] : base.shape;
    if (base instanceof Parameter && base.shape.length !== 2) {
      throw new Error(`LoRA "${name}": base weight must be 2-D (out, in)`);
    }
    const r = a.shape[0];
    if (
      a.shape.length !== 2 || a.shape[1] !== K || b.shape.length !== 2 || b.shape[0] !== N ||
      b.shape[1] !== r
    ) {
      throw new Error(
        `LoRA "${name}": base (${N}, ${K}) needs A (r, ${K}) and B (${N}, r); got A [${
          a.shape.join(", ")
        }], B [${b.shape.join(", ")}]`,
      );
    }
    if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N)) {
      throw new Error(`LoRA "${name}": bias must be (${N}), got [${bias.shape.join(", ")}]`);
    }
    if (!Number.isFinite(scaling)) throw new Error(`LoRA "${name}": scaling ${scaling}`);
    this.outFeatures = N;
    this.inFeatures = K;
    this.r = r;
  }

  /** A LoRA layer over `base` with new adapters (PEFT's initialisation). */
  static create(
    dev: Device,
    name: string,
    base: Parameter | Nf4Weight,
    opts: LoraLinearOptions,
  ): LoraLinear {
    const [N, K] = base instanceof Nf4Weight ? [base.rows, base.cols] : base.shape;
    const { a, b } = createLoraParameters(dev, name, { r: opts.r, N, K }, { seed: opts.seed });
    return new LoraLinear(
      dev,
      name,
      base,
      a,
      b,
      loraScaling(opts.r, opts.alpha, opts.rslora),
      opts.bias,
    );
  }

  /** The trainable parameters: A then B (the base is frozen). */
  get parameters(): Parameter[] {
    return [this.a, this.b];
  }

  /** x·Wᵀ (+ bias) into a new (S, N) tensor. */
  #baseForward(x: Tensor): Tensor {
    const dev = this.dev;
    const name = `${this.name}.out`;
    let y: Tensor | undefined;
    if (this.bias) {
      // the bias broadcast over rows, then the product accumulated onto it (as linearForward)
      y = dev.tensor([x.shape[0], this.outFeatures], { tag: "activations", name });
      const total = y.size;
      if (total > 0) {
        const [nx, ny] = grid1d(ceilDiv(total, 256));
        dev.dispatch({
          kernel: "matmul_bias_fill",
          bindings: [this.bias.value, y],
          params: new Params().u32(total).u32(this.outFeatures).u32(nx),
          workgroups: [nx, ny],
        });
      }
    }
    const into = y ? { out: y, accumulate: true } : { name };
    return this.base instanceof Nf4Weight
      ? nf4Linear(dev, x, this.base, into)
      : matmul(dev, x, this.base.value, { transB: true, ...into });
  }

  #checkInput(x: Tensor): void {
    if (x.shape.length !== 2 || x.shape[1] !== this.inFeatures) {
      throw new Error(
        `LoRA "${this.name}": input must be (S, ${this.inFeatures}), got "${x.name}" [${
          x.shape.join(", ")
        }]`,
      );
    }
  }

  /** u = s·(x·Aᵀ) (S, r), a new tensor. */
  #down(x: Tensor): Tensor {
    const u = matmul(this.dev, x, this.a.value, { transB: true, name: `${this.name}.lora_u` });
    scaleInPlace(this.dev, u, this.scaling);
    return u;
  }

  forward(x: Tensor): Forward<LoraSaved> {
    this.#checkInput(x);
    const y = this.#baseForward(x);
    const u = this.#down(x);
    matmul(this.dev, u, this.b.value, { transB: true, out: y, accumulate: true });
    return { out: y, saved: { x: view(x), u } };
  }

  /** The output alone: u is a transient, nothing is saved. */
  forwardOut(x: Tensor): Tensor {
    const f = this.forward(x);
    f.saved.x.dispose();
    f.saved.u.dispose();
    return f.out;
  }

  /** The saved record alone (recomputation): the base product is skipped. */
  recompute(x: Tensor): LoraSaved {
    this.#checkInput(x);
    return { x: view(x), u: this.#down(x) };
  }

  backward(dy: Tensor, s: LoraSaved): Tensor {
    const dev = this.dev;
    // dB += dyᵀ·u  (u already holds the scaling)
    linearBackwardWeight(dev, dy, s.u, this.b.gradFor(dev));
    s.u.dispose();
    // g = s·(dy·B) (S, r); dA += gᵀ·x
    const g = matmul(dev, dy, this.b.value, { name: `${this.name}.lora_g` });
    scaleInPlace(dev, g, this.scaling);
    linearBackwardWeight(dev, g, s.x, this.a.gradFor(dev));
    s.x.dispose();
    // dx = dy·W + g·A; the base gets no gradient
    const name = `${this.name}.dx`;
    const dx = this.base instanceof Nf4Weight
      ? nf4LinearInputGrad(dev, dy, this.base, { name })
      : matmul(dev, dy, this.base.value, { name });
    matmul(dev, g, this.a.value, { out: dx, accumulate: true });
    g.dispose();
    return dx;
  }
}
