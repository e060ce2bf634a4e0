/** Small helpers shared by the ops. */

import type { Tensor } from "../device/tensor.ts";

/** ceil(a / b) for positive integers. */
export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}

/**
 * Splits a 1-D workgroup count over x and y so neither exceeds 65535.
 * Kernels recover the linear index as `wg.y * nx + wg.x` (nx passed as a parameter).
 */
export function grid1d(groups: number): [number, number] {
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** Throws unless both tensors have the same number of elements. */
export function expectSameSize(a: Tensor, b: Tensor, op: string): void {
  if (a.size !== b.size) {
    throw new Error(
      `${op}: "${a.name}" [${a.shape.join(", ")}] and "${b.name}" [${
        b.shape.join(", ")
      }] differ in size`,
    );
  }
}
