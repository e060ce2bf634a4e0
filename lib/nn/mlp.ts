/**
 * The gated MLP of the Llama family: down(act(gate(x)) ∘ up(x)), SwiGLU (`silu`) or GeGLU
 * (`gelu_tanh`). Row-wise, so MsT can split it into mini-sequences.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { downGluBackward, gluProjectForward } from "../ops/glu.ts";
import {
  linearBackwardInputPair,
  linearBackwardWeight,
  linearBackwardWeightPair,
  linearForward,
} from "../ops/linear.ts";
import { type Forward, type SeqLayer, view } from "./layer.ts";
import type { Parameter } from "./parameter.ts";

/** What the MLP keeps for backward: its input and the three (S, I) intermediates. */
export interface MLPSaved {
  x: Tensor; // (S, d)
  gate: Tensor; // (S, I)
  up: Tensor; // (S, I)
  h: Tensor; // (S, I) act(gate) ∘ up
}

/** The gated MLP. */
export class MLP implements SeqLayer<MLPSaved> {
  readonly rowWise = true;
  constructor(
    readonly dev: Device,
    readonly name: string,
    readonly gate: Parameter, // (I, d)
    readonly up: Parameter, // (I, d)
    readonly down: Parameter, // (d, I)
    readonly activation: "silu" | "gelu_tanh",
  ) {}

  forward(x: Tensor): Forward<MLPSaved> {
    const saved = this.recompute(x);
    const out = linearForward(this.dev, saved.h, this.down.value, undefined, {
      name: `${this.name}.out`,
    });
    return { out, saved };
  }

  /**
   * The output alone (the forward of a recomputed MLP): h is formed without storing gate and
   * up, so the transients are h and the output.
   */
  forwardOut(x: Tensor): Tensor {
    const { h } = gluProjectForward(this.dev, x, this.gate.value, this.up.value, {
      activation: this.activation,
      keep: false,
      name: this.name,
    });
    const out = linearForward(this.dev, h, this.down.value, undefined, {
      name: `${this.name}.out`,
    });
    h.dispose();
    return out;
  }

  /** The saved record only: the down projection is not needed for backward. */
  recompute(x: Tensor): MLPSaved {
    const dev = this.dev;
    // gate, up and h in one pass (matmul epilogue) where the shapes allow
    const { gate, up, h } = gluProjectForward(dev, x, this.gate.value, this.up.value, {
      activation: this.activation,
      keep: true,
      name: this.name,
    });
    return { x: view(x), gate: gate!, up: up!, h };
  }

  backward(dy: Tensor, s: MLPSaved): Tensor {
    const dev = this.dev;
    // down: out = h·Wdᵀ
    linearBackwardWeight(dev, dy, s.h, this.down.gradFor(dev));
    s.h.dispose();
    // dh = dy·Wd and the gate backward in one kernel (dh is never stored)
    const { dGate, dUp } = downGluBackward(dev, dy, this.down.value, s.gate, s.up, {
      activation: this.activation,
      name: `${this.name}.dh`,
    });
    s.gate.dispose();
    s.up.dispose();
    // both weight gradients in one pass over x, dx = dGate·Wg + dUp·Wu in one more
    linearBackwardWeightPair(dev, dGate, dUp, s.x, this.gate.gradFor(dev), this.up.gradFor(dev));
    s.x.dispose();
    const dx = linearBackwardInputPair(dev, dGate, this.gate.value, dUp, this.up.value, {
      name: `${this.name}.dx`,
    });
    dGate.dispose();
    dUp.dispose();
    return dx;
  }
}
