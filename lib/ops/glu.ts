/** Gated MLP activation: act(gate) · up with SiLU (Llama) or tanh-GELU (Gemma). */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
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
