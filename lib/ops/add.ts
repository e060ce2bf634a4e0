/** Residual add, in-place accumulation and in-place scaling. */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
import { ceilDiv, expectSameSize, grid1d } from "./util.ts";

/** out = a + b, a new tensor shaped like `a`. */
export function add(
  dev: Device,
  a: Tensor,
  b: Tensor,
  opts: { tag?: Tag; name?: string } = {},
): Tensor {
  expectSameSize(a, b, "add");
  const out = dev.tensor(a.shape, { tag: opts.tag ?? a.tag, name: opts.name ?? "add" });
  dev.dispatch({
    kernel: "add",
    bindings: [a, b, out],
    params: new Params().u32(a.size),
    workgroups: [ceilDiv(a.size, 256)],
  });
  return out;
}

/** a += alpha · b, in place (gradient accumulation, residual streams). */
export function addInPlace(dev: Device, a: Tensor, b: Tensor, alpha = 1): void {
  expectSameSize(a, b, "addInPlace");
  dev.dispatch({
    kernel: "add_inplace",
    bindings: [a, b],
    params: new Params().u32(a.size).f32(alpha),
    workgroups: [ceilDiv(a.size, 256)],
  });
}

/**
 * a *= alpha, in place (LoRA's scaling of its (S, r) intermediates). alpha = 1 dispatches
 * nothing.
 */
export function scaleInPlace(dev: Device, a: Tensor, alpha: number): void {
  if (!Number.isFinite(alpha)) {
    throw new Error(`scaleInPlace "${a.name}": alpha must be finite, got ${alpha}`);
  }
  if (alpha === 1 || a.size === 0) return;
  const [nx, ny] = grid1d(ceilDiv(a.size, 256));
  dev.dispatch({
    kernel: "scale_inplace",
    bindings: [a],
    params: new Params().u32(a.size).f32(alpha).u32(nx),
    workgroups: [nx, ny],
  });
}
