/** RMSNorm (Llama; Gemma's `1 + w` variant with `unitOffset`). */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import { expectShape, type Tensor } from "../device/tensor.ts";
import { ceilDiv, grid1d } from "./util.ts";

/** Options of {@link rmsnormForward}. */
export interface RMSNormOptions {
  /** Added to the mean square before the square root. */
  eps: number;
  /** Gemma: scale by `1 + w` instead of `w`. */
  unitOffset?: boolean;
  /** Tag of the outputs (default `activations`). */
  tag?: Tag;
  /** Name of `y` (default `rmsnorm`). */
  name?: string;
}

function expectMatrix(t: Tensor, what: string): [number, number] {
  if (t.shape.length !== 2) {
    throw new Error(`${what}: expected shape [S, d], got [${t.shape.join(", ")}]`);
  }
  return [t.shape[0], t.shape[1]];
}

/**
 * y (S, d) = x · rstd · w (or `1 + w` with `unitOffset`), rstd (S) = 1/√(mean(x²) + eps).
 * `rstd` is kept for the backward.
 */
export function rmsnormForward(
  dev: Device,
  x: Tensor,
  w: Tensor,
  opts: RMSNormOptions,
): { y: Tensor; rstd: Tensor } {
  const [S, d] = expectMatrix(x, "rmsnormForward: x");
  expectShape(w, [d], "rmsnormForward: w");
  const tag = opts.tag ?? "activations";
  const name = opts.name ?? "rmsnorm";
  const y = dev.tensor([S, d], { tag, name }); // (S, d)
  const rstd = dev.tensor([S], { tag, name: `${name}.rstd` }); // (S)
  if (d % 4 === 0) {
    // One row per invocation with vec4 loads: no workgroup barriers (slow on lavapipe).
    const [nx, ny] = grid1d(ceilDiv(S, 64));
    dev.dispatch({
      kernel: "rmsnorm_forward_rows",
      bindings: [x, w, y, rstd],
      params: new Params().u32(S).u32(d / 4).f32(opts.eps).u32(opts.unitOffset ? 1 : 0).u32(nx),
      workgroups: [nx, ny],
    });
    return { y, rstd };
  }
  const [nx, ny] = grid1d(S);
  dev.dispatch({
    kernel: "rmsnorm_forward",
    bindings: [x, w, y, rstd],
    params: new Params().u32(S).u32(d).f32(opts.eps).u32(opts.unitOffset ? 1 : 0).u32(nx),
    workgroups: [nx, ny],
  });
  return { y, rstd };
}

/**
 * Backward of {@link rmsnormForward}: returns dx (S, d) and accumulates dw (d) +=
 * Σ_s dy·x·rstd (a race-free column reduction).
 */
export function rmsnormBackward(
  dev: Device,
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  rstd: Tensor,
  dw: Tensor,
  opts: { unitOffset?: boolean; tag?: Tag; name?: string } = {},
): Tensor {
  const [S, d] = expectMatrix(x, "rmsnormBackward: x");
  expectShape(dy, [S, d], "rmsnormBackward: dy");
  expectShape(w, [d], "rmsnormBackward: w");
  expectShape(rstd, [S], "rmsnormBackward: rstd");
  expectShape(dw, [d], "rmsnormBackward: dw");
  const dx = dev.tensor([S, d], {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "rmsnorm.dx",
  }); // (S, d)
  if (d % 4 === 0) {
    const [nx, ny] = grid1d(ceilDiv(S, 64));
    dev.dispatch({
      kernel: "rmsnorm_backward_dx_rows",
      bindings: [dy, x, w, rstd, dx],
      params: new Params().u32(S).u32(d / 4).u32(opts.unitOffset ? 1 : 0).u32(nx),
      workgroups: [nx, ny],
    });
  } else {
    const [nx, ny] = grid1d(S);
    dev.dispatch({
      kernel: "rmsnorm_backward_dx",
      bindings: [dy, x, w, rstd, dx],
      params: new Params().u32(S).u32(d).u32(opts.unitOffset ? 1 : 0).u32(nx),
      workgroups: [nx, ny],
    });
  }
  dev.dispatch({
    kernel: "rmsnorm_backward_dw",
    bindings: [dy, x, rstd, dw],
    params: new Params().u32(S).u32(d),
    workgroups: [ceilDiv(d, 64)],
  });
  return dx;
}
