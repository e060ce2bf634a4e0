/** RMSNorm (Llama; Gemma's `1 + w` variant with `unitOffset`). */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { fillTemplate, kernelSource, Params } from "../device/kernel_source.ts";
import { expectShape, type Tensor } from "../device/tensor.ts";
import { add, addInPlace } from "./add.ts";
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
  const rstd = dev.tensor([S], { tag, name: `${name}.rstd`, dtype: "f32" }); // (S) f32 always
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
 * Residual add + RMSNorm: sum (S, d) = a + b, then {@link rmsnormForward} of the sum, in one
 * dispatch when d % 4 = 0 (`add_rmsnorm_rows`; else `add` then the norm). Allocates what the
 * two ops would, in the same order: sum (tag `sumTag`, default a's tag), y, rstd.
 */
export function addRmsnormForward(
  dev: Device,
  a: Tensor,
  b: Tensor,
  w: Tensor,
  opts: RMSNormOptions & { sumName?: string; sumTag?: Tag },
): { sum: Tensor; y: Tensor; rstd: Tensor } {
  const [S, d] = expectMatrix(a, "addRmsnormForward: a");
  expectShape(b, [S, d], "addRmsnormForward: b");
  expectShape(w, [d], "addRmsnormForward: w");
  if (d % 4 !== 0) {
    const sum = add(dev, a, b, { tag: opts.sumTag, name: opts.sumName });
    return { sum, ...rmsnormForward(dev, sum, w, opts) };
  }
  const tag = opts.tag ?? "activations";
  const name = opts.name ?? "rmsnorm";
  const sum = dev.tensor([S, d], { tag: opts.sumTag ?? a.tag, name: opts.sumName ?? "add" }); // (S, d)
  const y = dev.tensor([S, d], { tag, name }); // (S, d)
  const rstd = dev.tensor([S], { tag, name: `${name}.rstd`, dtype: "f32" }); // (S) f32 always
  const [nx, ny] = grid1d(ceilDiv(S, 64));
  dev.dispatch({
    kernel: "add_rmsnorm_rows",
    bindings: [a, b, w, sum, y, rstd],
    params: new Params().u32(S).u32(d / 4).f32(opts.eps).u32(opts.unitOffset ? 1 : 0).u32(nx),
    workgroups: [nx, ny],
  });
  return { sum, y, rstd };
}

const RESIDUAL = {
  on: `@group(0) @binding(6) var<storage, read> res: array<vec4<SF>>;
fn residual(i: u32) -> vec4<f32> { return vec4<f32>(res[i]); }`,
  off: `fn residual(i: u32) -> vec4<f32> { return vec4<f32>(0.0); }`,
};

/**
 * Backward of {@link rmsnormForward}: returns dx (S, d) (+ `residual` (S, d) when given: the
 * gradient of a residual branch, added in the same pass) and accumulates dw (d) +=
 * Σ_s dy·x·rstd (a race-free column reduction). With d % 4 = 0 this is one dispatch
 * (`rmsnorm_backward_rows`: dx and dw side by side), else two (+ one for the residual).
 */
export function rmsnormBackward(
  dev: Device,
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  rstd: Tensor,
  dw: Tensor,
  opts: { unitOffset?: boolean; tag?: Tag; name?: string; residual?: Tensor } = {},
): Tensor {
  const [S, d] = expectMatrix(x, "rmsnormBackward: x");
  expectShape(dy, [S, d], "rmsnormBackward: dy");
  expectShape(w, [d], "rmsnormBackward: w");
  expectShape(rstd, [S], "rmsnormBackward: rstd");
  expectShape(dw, [d], "rmsnormBackward: dw");
  if (opts.residual) expectShape(opts.residual, [S, d], "rmsnormBackward: residual");
  const dx = dev.tensor([S, d], {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "rmsnorm.dx",
  }); // (S, d)
  if (d % 4 === 0) {
    const rowGroups = ceilDiv(S, 64);
    const res = opts.residual;
    dev.dispatch({
      kernel: "rmsnorm_backward_rows",
      source: fillTemplate(kernelSource("rmsnorm_backward_rows"), {
        RESIDUAL: res ? RESIDUAL.on : RESIDUAL.off,
      }),
      bindings: res ? [dy, x, w, rstd, dx, dw, res] : [dy, x, w, rstd, dx, dw],
      params: new Params().u32(S).u32(d / 4).u32(opts.unitOffset ? 1 : 0).u32(rowGroups),
      workgroups: [rowGroups + ceilDiv(d, 64)],
    });
    return dx;
  }
  const [nx, ny] = grid1d(S);
  dev.dispatch({
    kernel: "rmsnorm_backward_dx",
    bindings: [dy, x, w, rstd, dx],
    params: new Params().u32(S).u32(d).u32(opts.unitOffset ? 1 : 0).u32(nx),
    workgroups: [nx, ny],
  });
  dev.dispatch({
    kernel: "rmsnorm_backward_dw",
    bindings: [dy, x, rstd, dw],
    params: new Params().u32(S).u32(d),
    workgroups: [ceilDiv(d, 64)],
  });
  if (opts.residual) addInPlace(dev, dx, opts.residual);
  return dx;
}
