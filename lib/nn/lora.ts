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
import {
  linearBackwardInput,
  linearBackwardInputAccumulate,
  linearBackwardWeight,
  linearForward,
} from "../ops/linear.ts";
import { matmul } from "../ops/matmul.ts";
import { nf4Linear, nf4LinearInputGrad, Nf4Weight } from "../ops/nf4_matmul.ts";
import { ceilDiv, grid1d } from "../ops/util.ts";
import { rng } from "../util/random.ts";
import { type Forward, type SeqLayer, view } from "./layer.ts";
import { Parameter } from "./parameter.ts";

/**
 * The base weight of a projection (N, K): a {@link Parameter} (trainable, or frozen under
 * LoRA) or a frozen {@link Nf4Weight}.
 */
export type BaseWeight = Parameter | Nf4Weight;

/** The adapter of one projection: A (r, K), B (N, r) and the scaling s. */
export interface LoraAdapter {
  /** A (r, K). */
  a: Parameter;
  /** B (N, r). */
  b: Parameter;
  /** s = alpha/r (or alpha/√r, rsLoRA): {@link loraScaling}. */
  scaling: number;
}

/** True when `w` takes a weight gradient: a Parameter that is not frozen. */
export function isTrainable(w: BaseWeight): w is Parameter {
  return w instanceof Parameter && !w.frozen;
}

/** True when a bias takes a gradient (present and not frozen). */
export function biasTrainable(b: Parameter | undefined): b is Parameter {
  return b !== undefined && !b.frozen;
}

/** Where {@link baseInputGrad} writes: a new tensor `name`, or added into `out`. */
export type BaseGradTarget = { name: string; out?: undefined } | { out: Tensor };

/**
 * y (S, N) = x (S, K)·Wᵀ (+ bias): `linearForward` for a Parameter, the NF4 product for an NF4
 * weight (the bias broadcast first, the product accumulated onto it).
 */
export function baseForward(
  dev: Device,
  x: Tensor,
  w: BaseWeight,
  bias: Tensor | undefined,
  name: string,
): Tensor {
  if (w instanceof Parameter) return linearForward(dev, x, w.value, bias, { name });
  if (!bias) return nf4Linear(dev, x, w, { name });
  const y = dev.tensor([x.shape[0], w.rows], { tag: "activations", name });
  const total = y.size;
  if (total > 0) {
    const [nx, ny] = grid1d(ceilDiv(total, 256));
    dev.dispatch({
      kernel: "matmul_bias_fill",
      bindings: [bias, y],
      params: new Params().u32(total).u32(w.rows).u32(nx),
      workgroups: [nx, ny],
    });
  }
  return nf4Linear(dev, x, w, { out: y, accumulate: true });
}

/**
 * dx (S, K) = dy (S, N)·W, a new tensor (`to.name`) or added into `to.out` (no temporary):
 * `linearBackwardInput(Accumulate)` for a Parameter, the NF4 input-gradient product otherwise.
 */
export function baseInputGrad(dev: Device, dy: Tensor, w: BaseWeight, to: BaseGradTarget): Tensor {
  if (w instanceof Nf4Weight) {
    return nf4LinearInputGrad(dev, dy, w, to.out ? { out: to.out, accumulate: true } : to);
  }
  if (to.out) {
    linearBackwardInputAccumulate(dev, dy, w.value, to.out);
    return to.out;
  }
  return linearBackwardInput(dev, dy, w.value, { name: to.name });
}

/** u = s·(x·Aᵀ) (S, r), a new tensor `<name>.lora_u`. */
export function loraDown(dev: Device, x: Tensor, ad: LoraAdapter, name: string): Tensor {
  const u = matmul(dev, x, ad.a.value, { transB: true, name: `${name}.lora_u` });
  scaleInPlace(dev, u, ad.scaling);
  return u;
}

/** y += u·Bᵀ: the adapter's contribution, from u = {@link loraDown}. */
export function loraUp(dev: Device, u: Tensor, ad: LoraAdapter, y: Tensor): void {
  matmul(dev, u, ad.b.value, { transB: true, out: y, accumulate: true });
}

/**
 * The adapter's backward, from the output gradient dy (S, N), its input x (S, K) and u:
 * dB += dyᵀ·u, g = s·(dy·B) (S, r), dA += gᵀ·x. Frees u; returns g (`<name>.lora_g`), whose
 * input-gradient term g·A the caller adds ({@link loraInputGrad}) before freeing it.
 */
export function loraBackward(
  dev: Device,
  dy: Tensor,
  x: Tensor,
  u: Tensor,
  ad: LoraAdapter,
  name: string,
): Tensor {
  linearBackwardWeight(dev, dy, u, ad.b.gradFor(dev));
  u.dispose();
  const g = matmul(dev, dy, ad.b.value, { name: `${name}.lora_g` });
  scaleInPlace(dev, g, ad.scaling);
  linearBackwardWeight(dev, g, x, ad.a.gradFor(dev));
  return g;
}

/** dx += g·A, then frees g ({@link loraBackward}'s result). */
export function loraInputGrad(dev: Device, g: Tensor, ad: LoraAdapter, dx: Tensor): void {
  matmul(dev, g, ad.a.value, { out: dx, accumulate: true });
  g.dispose();
}

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
  /** The adapter (A, B, s). */
  readonly adapter: LoraAdapter;

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
    const [N, K] = base.shape;
    if (base.shape.length !== 2) {
      throw new Error(`LoRA "${name}": base weight must be 2-D (out, in)`);
    }
    checkAdapter(name, [N, K], a, b);
    if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N)) {
      throw new Error(`LoRA "${name}": bias must be (${N}), got [${bias.shape.join(", ")}]`);
    }
    if (!Number.isFinite(scaling)) throw new Error(`LoRA "${name}": scaling ${scaling}`);
    if (base instanceof Parameter) base.frozen = true;
    if (bias) bias.frozen = true;
    this.outFeatures = N;
    this.inFeatures = K;
    this.r = a.shape[0];
    this.adapter = { a, b, scaling };
  }

  /** A LoRA layer over `base` with new adapters (PEFT's initialisation). */
  static create(
    dev: Device,
    name: string,
    base: Parameter | Nf4Weight,
    opts: LoraLinearOptions,
  ): LoraLinear {
    const [N, K] = base.shape;
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

  #checkInput(x: Tensor): void {
    if (x.shape.length !== 2 || x.shape[1] !== this.inFeatures) {
      throw new Error(
        `LoRA "${this.name}": input must be (S, ${this.inFeatures}), got "${x.name}" [${
          x.shape.join(", ")
        }]`,
      );
    }
  }

  forward(x: Tensor): Forward<LoraSaved> {
    this.#checkInput(x);
    const y = baseForward(this.dev, x, this.base, this.bias?.value, `${this.name}.out`);
    const u = loraDown(this.dev, x, this.adapter, this.name);
    loraUp(this.dev, u, this.adapter, y);
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
    return { x: view(x), u: loraDown(this.dev, x, this.adapter, this.name) };
  }

  backward(dy: Tensor, s: LoraSaved): Tensor {
    const dev = this.dev;
    const g = loraBackward(dev, dy, s.x, s.u, this.adapter, this.name);
    s.x.dispose();
    // dx = dy·W + g·A; the base gets no gradient
    const dx = baseInputGrad(dev, dy, this.base, { name: `${this.name}.dx` });
    loraInputGrad(dev, g, this.adapter, dx);
    return dx;
  }
}

/** Throws unless A is (r, K) and B (N, r) for a base (N, K). */
export function checkAdapter(
  name: string,
  [N, K]: readonly number[],
  a: Parameter,
  b: Parameter,
): void {
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
}
