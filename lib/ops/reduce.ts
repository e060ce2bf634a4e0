/** Deterministic reductions to a scalar: sum, and the sum of squares over many tensors. */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
import { ceilDiv } from "./util.ts";

/** Most first-stage partial sums per tensor. */
const MAX_PARTIALS = 1024;
/** Fewest elements per first-stage workgroup. */
const MIN_CHUNK = 4096;

/** First-stage split of n elements: G workgroups of `chunk` elements (G ≥ 1). */
function split(n: number): { groups: number; chunk: number } {
  const groups = Math.max(1, Math.min(MAX_PARTIALS, ceilDiv(n, MIN_CHUNK)));
  return { groups, chunk: Math.max(1, ceilDiv(n, groups)) };
}

function expectFloat(t: Tensor, op: string): void {
  if (t.dtype === "i32") throw new Error(`${op}: "${t.name}" must be f32 or f16, got i32`);
}

/**
 * Σ_i (x_i or x_i²) of each tensor into one (1) tensor: stage 1 writes per-chunk partials
 * into a workspace, stage 2 sums them in one workgroup (fixed order: deterministic).
 */
function reduceInto(
  dev: Device,
  xs: Tensor[],
  square: boolean,
  opts: { tag?: Tag; name?: string },
  op: string,
): Tensor {
  xs.forEach((x) => expectFloat(x, op));
  const splits = xs.map((x) => split(x.size));
  const total = splits.reduce((a, s) => a + s.groups, 0);
  // Partial sums and the result are f32 whatever the inputs' storage (f32 accumulation).
  const out = dev.tensor([1], {
    tag: opts.tag ?? "activations",
    name: opts.name ?? op,
    dtype: "f32",
  }); // (1)
  const partials = dev.tensor([total], {
    tag: "workspace",
    name: `${op}.partials`,
    dtype: "f32",
  }); // (P)
  let offset = 0;
  xs.forEach((x, i) => {
    const { groups, chunk } = splits[i];
    dev.dispatch({
      kernel: "reduce_sum",
      bindings: [x, partials],
      params: new Params().u32(x.size).u32(chunk).u32(offset).u32(square ? 1 : 0),
      workgroups: [groups],
    });
    offset += groups;
  });
  dev.dispatch({
    kernel: "reduce_sum",
    bindings: [partials, out],
    params: new Params().u32(total).u32(Math.max(1, total)).u32(0).u32(0),
    workgroups: [1],
  });
  partials.dispose();
  return out;
}

/** Σ x over all elements, as a (1) tensor. */
export function sum(dev: Device, x: Tensor, opts: { tag?: Tag; name?: string } = {}): Tensor {
  return reduceInto(dev, [x], false, opts, "sum");
}

/**
 * Σ over all tensors of Σ x², as a (1) tensor (the squared global gradient norm).
 * Deterministic two-stage reduction; its workspace is freed before return.
 */
export function sumSquares(
  dev: Device,
  xs: Tensor[],
  opts: { tag?: Tag; name?: string } = {},
): Tensor {
  if (xs.length === 0) throw new Error("sumSquares: expected at least one tensor, got none");
  return reduceInto(dev, xs, true, opts, "sumSquares");
}
