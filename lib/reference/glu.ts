/** f64 reference of the gated activation act(gate) · up and its backward. */

import type { ModelConfig } from "../config/model_config.ts";

/** The gate activation of a GLU MLP. */
type GLUActivation = ModelConfig["activation"];

const GELU_K = Math.sqrt(2 / Math.PI);

/** act(x) for SiLU or tanh-GELU. */
function activationRef(x: number, activation: GLUActivation): number {
  if (activation === "silu") return x / (1 + Math.exp(-x));
  return 0.5 * x * (1 + Math.tanh(GELU_K * (x + 0.044715 * x ** 3)));
}

/** act'(x) for SiLU or tanh-GELU. */
function activationGradRef(x: number, activation: GLUActivation): number {
  if (activation === "silu") {
    const s = 1 / (1 + Math.exp(-x));
    return s * (1 + x * (1 - s));
  }
  const t = Math.tanh(GELU_K * (x + 0.044715 * x ** 3));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * 0.044715 * x * x);
}

/** h = act(gate) · up, elementwise. */
export function gluForwardRef(
  gate: Float64Array,
  up: Float64Array,
  activation: GLUActivation,
): Float64Array {
  return gate.map((g, i) => activationRef(g, activation) * up[i]);
}

/** dGate = dh · up · act'(gate), dUp = dh · act(gate). */
export function gluBackwardRef(
  dh: Float64Array,
  gate: Float64Array,
  up: Float64Array,
  activation: GLUActivation,
): { dGate: Float64Array; dUp: Float64Array } {
  return {
    dGate: gate.map((g, i) => dh[i] * up[i] * activationGradRef(g, activation)),
    dUp: gate.map((g, i) => dh[i] * activationRef(g, activation)),
  };
}
