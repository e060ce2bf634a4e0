/** Gated MLP activation: act(gate) · up with SiLU (Llama) or tanh-GELU (Gemma). */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
import { matmul, matmulDims, matmulGluBackward, matmulGluForward, matmulKernel } from "./matmul.ts";
import { ceilDiv, grid1d } from "./util.ts";

/** The gate activation. */
export type GLUActivation = "silu" | "gelu_tanh";

const ACT_CODE: Record<GLUActivation, number> = { silu: 0, gelu_tanh: 1 };

function actCode(activation: GLUActivation, op: string): number {
  const code = ACT_CODE[activation];
  if (code === undefined) {
    throw new Error(`${op}: unknown activation "${activation}"; use silu or gelu_tanh`);
  }
  return code;
}

function expectSameShape(a: Tensor, b: Tensor, op: string, what: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(
      `${op}: ${what}: expected shape [${a.shape.join(", ")}] (as gate), got [${
        b.shape.join(", ")
      }]`,
    );
  }
}

/** h (S, I) = act(gate) · up. */
export function gluForward(
  dev: Device,
  gate: Tensor,
  up: Tensor,
  opts: { activation: GLUActivation; tag?: Tag; name?: string },
): Tensor {
  const code = actCode(opts.activation, "gluForward");
  expectSameShape(gate, up, "gluForward", "up");
  const h = dev.tensor(gate.shape, {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "glu",
  }); // (S, I)
  const [nx, ny] = grid1d(ceilDiv(gate.size, 256));
  dev.dispatch({
    kernel: "glu_forward",
    constants: { ACT: code },
    bindings: [gate, up, h],
    params: new Params().u32(gate.size).u32(nx),
    workgroups: [nx, ny],
  });
  return h;
}

/** What {@link gluProjectForward} returns: h, and gate and up when kept. */
export interface GLUProjection {
  h: Tensor; // (S, I) act(gate)·up
  gate: Tensor | null; // (S, I) x·Wgᵀ, when kept
  up: Tensor | null; // (S, I) x·Wuᵀ, when kept
}

/**
 * The up half of a gated MLP: gate = x (S, d) · wGateᵀ, up = x · wUpᵀ (weights (I, d)) and
 * h = act(gate)·up, all (S, I). With `keep`, gate and up are returned too (the backward needs
 * them); without, only h is stored. One dispatch (`matmul_vec4_tex_glu_forward{,_h}`: both
 * products in one pass over x, the GLU in the epilogue) where the texture matmul takes the
 * shapes; otherwise two matmuls and {@link gluForward}, gate and up freed unless kept (both
 * devices take the same branch: it depends on shapes only). Outputs are allocated gate, up, h
 * (as the unfused sequence allocates them).
 */
export function gluProjectForward(
  dev: Device,
  x: Tensor,
  wGate: Tensor,
  wUp: Tensor,
  opts: { activation: GLUActivation; keep: boolean; tag?: Tag; name?: string },
): GLUProjection {
  const code = actCode(opts.activation, "gluProjectForward");
  const { M, N, K } = matmulDims(x, wGate, false, true, "gluProjectForward");
  expectSameShape(wGate, wUp, "gluProjectForward", "up weight");
  const tag = opts.tag ?? "activations";
  const name = opts.name ?? "glu";
  if (matmulKernel(x, wGate, M, N, K) !== "matmul_vec4_tex") {
    const gate = matmul(dev, x, wGate, { transB: true, tag, name: `${name}.gate` }); // (S, I)
    const up = matmul(dev, x, wUp, { transB: true, tag, name: `${name}.up` }); // (S, I)
    const h = gluForward(dev, gate, up, { activation: opts.activation, tag, name: `${name}.h` });
    if (opts.keep) return { h, gate, up };
    gate.dispose();
    up.dispose();
    return { h, gate: null, up: null };
  }
  const gate = opts.keep ? dev.tensor([M, N], { tag, name: `${name}.gate` }) : null; // (S, I)
  const up = opts.keep ? dev.tensor([M, N], { tag, name: `${name}.up` }) : null; // (S, I)
  const h = dev.tensor([M, N], { tag, name: `${name}.h` }); // (S, I)
  matmulGluForward(dev, x, wGate, wUp, h, gate && up ? { gate, up } : null, code);
  return { h, gate, up };
}

/** Backward of {@link gluForward}: dGate = dh·up·act'(gate), dUp = dh·act(gate), both (S, I). */
export function gluBackward(
  dev: Device,
  dh: Tensor,
  gate: Tensor,
  up: Tensor,
  opts: { activation: GLUActivation; tag?: Tag },
): { dGate: Tensor; dUp: Tensor } {
  const code = actCode(opts.activation, "gluBackward");
  expectSameShape(gate, up, "gluBackward", "up");
  expectSameShape(gate, dh, "gluBackward", "dh");
  const tag = opts.tag ?? "activations";
  const dGate = dev.tensor(gate.shape, { tag, name: "glu.dGate" }); // (S, I)
  const dUp = dev.tensor(gate.shape, { tag, name: "glu.dUp" }); // (S, I)
  const [nx, ny] = grid1d(ceilDiv(gate.size, 256));
  dev.dispatch({
    kernel: "glu_backward",
    constants: { ACT: code },
    bindings: [dh, gate, up, dGate, dUp],
    params: new Params().u32(gate.size).u32(nx),
    workgroups: [nx, ny],
  });
  return { dGate, dUp };
}

/**
 * The down projection's input gradient and the gated unit's backward in one kernel:
 * dh (S, I) = dy (S, d) · wDown (d, I), then {@link gluBackward} of dh — with the epilogue of
 * `matmul_vec4_tex_glu_backward` dh is never stored (one dispatch, no (S, I) temporary). For
 * shapes the texture matmul does not take, dh is formed by {@link matmul}, passed to
 * {@link gluBackward} and freed (both devices take the same branch: it depends on shapes only).
 */
export function downGluBackward(
  dev: Device,
  dy: Tensor,
  wDown: Tensor,
  gate: Tensor,
  up: Tensor,
  opts: { activation: GLUActivation; tag?: Tag; name?: string },
): { dGate: Tensor; dUp: Tensor } {
  const code = actCode(opts.activation, "downGluBackward");
  const { M, N, K } = matmulDims(dy, wDown, false, false, "downGluBackward");
  expectSameShape(gate, up, "downGluBackward", "up");
  if (gate.shape.length !== 2 || gate.shape[0] !== M || gate.shape[1] !== N) {
    throw new Error(
      `downGluBackward: gate: expected shape [${M}, ${N}] (rows of dy, columns of wDown), got [${
        gate.shape.join(", ")
      }]`,
    );
  }
  if (matmulKernel(dy, wDown, M, N, K) !== "matmul_vec4_tex") {
    const dh = matmul(dev, dy, wDown, { name: opts.name ?? "glu.dh" }); // (S, I)
    const g = gluBackward(dev, dh, gate, up, opts);
    dh.dispose();
    return g;
  }
  const tag = opts.tag ?? "activations";
  const dGate = dev.tensor(gate.shape, { tag, name: "glu.dGate" }); // (S, I)
  const dUp = dev.tensor(gate.shape, { tag, name: "glu.dUp" }); // (S, I)
  matmulGluBackward(dev, dy, wDown, gate, up, dGate, dUp, code);
  return { dGate, dUp };
}
