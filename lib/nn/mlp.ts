/**
 * The gated MLP of the Llama family: down(act(gate(x)) ∘ up(x)), SwiGLU (`silu`) or GeGLU
 * (`gelu_tanh`). Row-wise, so MsT can split it into mini-sequences.
 *
 * Under LoRA the base weights are frozen (frozen Parameters or NF4) and each projection may have
 * an adapter: its term s·(x·Aᵀ)·Bᵀ is added to the projection, u = s·(x·Aᵀ) is saved beside the
 * projection's input (x for gate and up, h for down), and the fused paths (the GLU in the up
 * projection's epilogue, the GLU backward in the down projection's) give way to their unfused
 * sequences where an adapter's term has to enter between the product and the activation.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { downGluBackward, gluBackward, gluForward, gluProjectForward } from "../ops/glu.ts";
import {
  linearBackwardInputPair,
  linearBackwardWeight,
  linearBackwardWeightPair,
  linearForward,
  linearForwardPair,
} from "../ops/linear.ts";
import { type Forward, type SeqLayer, view } from "./layer.ts";
import {
  baseForward,
  baseInputGrad,
  type BaseWeight,
  checkAdapter,
  isTrainable,
  type LoraAdapter,
  loraBackward,
  loraDown,
  loraInputGrad,
  loraUp,
} from "./lora.ts";
import { Parameter } from "./parameter.ts";

/** The three projections of the MLP. */
export type MLPProjection = "gate" | "up" | "down";

/** What the MLP keeps for backward: its input and the three (S, I) intermediates. */
export interface MLPSaved {
  x: Tensor; // (S, d)
  gate: Tensor; // (S, I)
  up: Tensor; // (S, I)
  h: Tensor; // (S, I) act(gate) ∘ up
  /** LoRA: u = s·(input·Aᵀ) (S, r) per adapted projection (inputs: x for gate/up, h for down). */
  lora?: Partial<Record<MLPProjection, Tensor>>;
}

/** The gated MLP. */
export class MLP implements SeqLayer<MLPSaved> {
  readonly rowWise = true;
  /**
   * @param gate Base weight (I, d): trainable, or frozen under LoRA.
   * @param up Base weight (I, d).
   * @param down Base weight (d, I).
   * @param lora LoRA adapters by projection (absent: no adapter).
   */
  constructor(
    readonly dev: Device,
    readonly name: string,
    readonly gate: BaseWeight, // (I, d)
    readonly up: BaseWeight, // (I, d)
    readonly down: BaseWeight, // (d, I)
    readonly activation: "silu" | "gelu_tanh",
    readonly lora: Partial<Record<MLPProjection, LoraAdapter>> = {},
  ) {
    for (const [which, ad] of Object.entries(lora)) {
      const w = ({ gate, up, down } as Record<string, BaseWeight>)[which];
      if (!w) throw new Error(`${name}: LoRA adapter for unknown projection "${which}"`);
      if (ad) checkAdapter(`${name}.${which}_proj`, w.shape, ad.a, ad.b);
    }
  }

  /** True when at least one projection has a LoRA adapter. */
  get adapted(): boolean {
    return Object.values(this.lora).some((a) => a !== undefined);
  }

  /** Whether gate, up and h come from the fused `gluProjectForward` (no adapter, tensors). */
  get #fusedUp(): boolean {
    return !this.lora.gate && !this.lora.up && this.gate instanceof Parameter &&
      this.up instanceof Parameter;
  }

  /** u of projection `which` at its input, named `<name>.<which>_proj.lora_u`. */
  #down(x: Tensor, which: MLPProjection): Tensor | undefined {
    const ad = this.lora[which];
    return ad ? loraDown(this.dev, x, ad, `${this.name}.${which}_proj`) : undefined;
  }

  /** The down projection of h (+ the adapter's term from its u). */
  #project(h: Tensor, uDown: Tensor | undefined): Tensor {
    const out = this.down instanceof Parameter
      ? linearForward(this.dev, h, this.down.value, undefined, { name: `${this.name}.out` })
      : baseForward(this.dev, h, this.down, undefined, `${this.name}.out`);
    if (uDown) loraUp(this.dev, uDown, this.lora.down!, out);
    return out;
  }

  forward(x: Tensor): Forward<MLPSaved> {
    const saved = this.recompute(x);
    return { out: this.#project(saved.h, saved.lora?.down), saved };
  }

  /**
   * The output alone (the forward of a recomputed MLP): h is formed without storing gate and
   * up, so the transients are h and the output (under LoRA gate and up are freed before the
   * down projection).
   */
  forwardOut(x: Tensor): Tensor {
    if (this.#fusedUp) {
      const { h } = gluProjectForward(this.dev, x, this.#value(this.gate), this.#value(this.up), {
        activation: this.activation,
        keep: false,
        name: this.name,
      });
      const uDown = this.#down(h, "down");
      const out = this.#project(h, uDown);
      uDown?.dispose();
      h.dispose();
      return out;
    }
    const s = this.recompute(x);
    for (const t of [s.x, s.gate, s.up, s.lora?.gate, s.lora?.up]) t?.dispose();
    const out = this.#project(s.h, s.lora?.down);
    s.lora?.down?.dispose();
    s.h.dispose();
    return out;
  }

  #value(w: BaseWeight): Tensor {
    return (w as Parameter).value;
  }

  /** The saved record only: the down projection is not needed for backward. */
  recompute(x: Tensor): MLPSaved {
    const dev = this.dev;
    if (this.#fusedUp) {
      // gate, up and h in one pass (matmul epilogue) where the shapes allow
      const { gate, up, h } = gluProjectForward(
        dev,
        x,
        this.#value(this.gate),
        this.#value(this.up),
        {
          activation: this.activation,
          keep: true,
          name: this.name,
        },
      );
      if (!this.adapted) return { x: view(x), gate: gate!, up: up!, h };
      return { x: view(x), gate: gate!, up: up!, h, lora: { down: this.#down(h, "down") } };
    }
    // LoRA on gate or up, or an NF4 base: both products (one pass over x for Parameter
    // bases), the adapters' terms, then the GLU
    const name = this.name;
    const [gate, up] = this.gate instanceof Parameter && this.up instanceof Parameter
      ? linearForwardPair(dev, x, this.gate.value, this.up.value, {
        names: [`${name}.gate`, `${name}.up`],
      })
      : [
        baseForward(dev, x, this.gate, undefined, `${name}.gate`),
        baseForward(dev, x, this.up, undefined, `${name}.up`),
      ];
    const lora: Partial<Record<MLPProjection, Tensor>> = {};
    for (const [which, y] of [["gate", gate], ["up", up]] as const) {
      const u = this.#down(x, which);
      if (u) {
        loraUp(dev, u, this.lora[which]!, y);
        lora[which] = u;
      }
    }
    const h = gluForward(dev, gate, up, { activation: this.activation, name: `${name}.h` });
    lora.down = this.#down(h, "down");
    return { x: view(x), gate, up, h, lora };
  }

  backward(dy: Tensor, s: MLPSaved): Tensor {
    const dev = this.dev;
    const ad = this.lora;
    // down: out = h·Wdᵀ (+ s·(h·Aᵀ)·Bᵀ)
    if (isTrainable(this.down)) linearBackwardWeight(dev, dy, s.h, this.down.gradFor(dev));
    const gDown = ad.down
      ? loraBackward(dev, dy, s.h, s.lora!.down!, ad.down, `${this.name}.down_proj`)
      : null;
    s.h.dispose();
    let dGate: Tensor, dUp: Tensor;
    if (this.down instanceof Parameter && !gDown) {
      // dh = dy·Wd and the gate backward in one kernel (dh is never stored)
      ({ dGate, dUp } = downGluBackward(dev, dy, this.down.value, s.gate, s.up, {
        activation: this.activation,
        name: `${this.name}.dh`,
      }));
    } else {
      // the adapter's term enters dh before the GLU backward: dh is stored
      const dh = baseInputGrad(dev, dy, this.down, { name: `${this.name}.dh` });
      if (gDown) loraInputGrad(dev, gDown, ad.down!, dh);
      ({ dGate, dUp } = gluBackward(dev, dh, s.gate, s.up, { activation: this.activation }));
      dh.dispose();
    }
    s.gate.dispose();
    s.up.dispose();
    // both weight gradients in one pass over x, dx = dGate·Wg + dUp·Wu in one more
    if (isTrainable(this.gate) && isTrainable(this.up)) {
      linearBackwardWeightPair(dev, dGate, dUp, s.x, this.gate.gradFor(dev), this.up.gradFor(dev));
    } else {
      if (isTrainable(this.gate)) linearBackwardWeight(dev, dGate, s.x, this.gate.gradFor(dev));
      if (isTrainable(this.up)) linearBackwardWeight(dev, dUp, s.x, this.up.gradFor(dev));
    }
    const gGate = ad.gate
      ? loraBackward(dev, dGate, s.x, s.lora!.gate!, ad.gate, `${this.name}.gate_proj`)
      : null;
    const gUp = ad.up
      ? loraBackward(dev, dUp, s.x, s.lora!.up!, ad.up, `${this.name}.up_proj`)
      : null;
    s.x.dispose();
    const dx = this.gate instanceof Parameter && this.up instanceof Parameter
      ? linearBackwardInputPair(dev, dGate, this.gate.value, dUp, this.up.value, {
        name: `${this.name}.dx`,
      })
      : baseInputGrad(dev, dUp, this.up, {
        out: baseInputGrad(dev, dGate, this.gate, { name: `${this.name}.dx` }),
      });
    dGate.dispose();
    dUp.dispose();
    if (gGate) loraInputGrad(dev, gGate, ad.gate!, dx);
    if (gUp) loraInputGrad(dev, gUp, ad.up!, dx);
    return dx;
  }
}
