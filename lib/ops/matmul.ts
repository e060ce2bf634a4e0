/**
 * Matrix product C = op(A)·op(B) on register-tiled kernels.
 *
 * Two kernels: `matmul_vec4` (16×16 tile per invocation, vec4 loads; needs K % 4 = 0,
 * N % 4 = 0 and, with transA, M % 4 = 0) and `matmul` (8×8 tile, scalar loads, any shape).
 * On lavapipe every storage load is a per-lane loop, so the tile size (FMAs per load) sets
 * the speed; see the kernels' headers.
 */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
import { ceilDiv } from "./util.ts";

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Use Aᵀ: `a` is stored (K, M). */
  transA?: boolean;
  /** Use Bᵀ: `b` is stored (N, K). */
  transB?: boolean;
  /** Write into this (M, N) tensor instead of allocating one. */
  out?: Tensor;
  /** Add the product to `out` (requires `out`). */
  accumulate?: boolean;
  /** Tag of a newly allocated output (default `"activations"`). */
  tag?: Tag;
  /** Name of a newly allocated output (default `"matmul"`). */
  name?: string;
}

/** The (M, N, K) of op(A)·op(B), or a readable error. */
export function matmulDims(
  a: Tensor,
  b: Tensor,
  transA = false,
  transB = false,
  op = "matmul",
): { M: number; N: number; K: number } {
  if (a.shape.length !== 2 || b.shape.length !== 2) {
    throw new Error(
      `${op}: operands must be 2-D, got "${a.name}" [${a.shape.join(", ")}] and "${b.name}" [${
        b.shape.join(", ")
      }]`,
    );
  }
  const [M, Ka] = transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [Kb, N] = transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (Ka !== Kb) {
    throw new Error(
      `${op}: inner dimensions differ: op(A) = ${
        transA ? "Aᵀ" : "A"
      } is (${M}, ${Ka}) from "${a.name}" [${a.shape.join(", ")}], op(B) = ${
        transB ? "Bᵀ" : "B"
      } is (${Kb}, ${N}) from "${b.name}" [${b.shape.join(", ")}]`,
    );
  }
  if (a.dtype !== "f32" || b.dtype !== "f32") {
    throw new Error(`${op}: operands must be f32, got ${a.dtype} and ${b.dtype}`);
  }
  return { M, N, K: Ka };
}

/** Invocations per workgroup along N (the rest of the 8 go along M) wasting the fewest tiles. */
function lanesAlongN(rowTiles: number, colTiles: number): number {
  let best = 8;
  let bestSlots = Infinity;
  for (const lx of [8, 4, 2, 1]) {
    const ly = 8 / lx;
    const slots = ceilDiv(colTiles, lx) * lx * ceilDiv(rowTiles, ly) * ly;
    if (slots < bestSlots) [best, bestSlots] = [lx, slots];
  }
  return best;
}

/**
 * C (M, N) = op(A)·op(B), where op(A) = A (M, K) or Aᵀ (`a` stored (K, M)) and op(B) = B (K, N)
 * or Bᵀ (`b` stored (N, K)). With `accumulate`, adds into `out` (C += op(A)·op(B)); with `out`
 * alone, overwrites it. Returns the output tensor (`out` when given). When `a` and `b` share
 * storage (e.g. x·xᵀ), `b` is first copied to a `"workspace"` tensor, freed before return.
 */
export function matmul(dev: Device, a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const { M, N, K } = matmulDims(a, b, transA, transB);
  if (opts.accumulate && !opts.out) {
    throw new Error(`matmul: accumulate needs an out tensor (M, N) = (${M}, ${N}) to add into`);
  }
  if (opts.out) {
    const o = opts.out;
    if (o.shape.length !== 2 || o.shape[0] !== M || o.shape[1] !== N || o.dtype !== "f32") {
      throw new Error(
        `matmul: out "${o.name}" must be f32 [${M}, ${N}], got ${o.dtype} [${o.shape.join(", ")}]`,
      );
    }
    if (o === a || o === b || o.id === a.id || o.id === b.id) {
      throw new Error(`matmul: out "${o.name}" must not alias an operand`);
    }
  }
  const out = opts.out ?? dev.tensor([M, N], {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "matmul",
  });
  if (M === 0 || N === 0) return out;
  // WebGPU forbids one buffer in two bindings of a dispatch that writes: square a copy.
  const bb = b.id === a.id ? dev.tensor(b.shape, { tag: "workspace", name: "matmul.b" }) : b;
  if (bb !== b) dev.copy(b, 0, bb, 0, b.size);
  const acc = opts.accumulate ? 1 : 0;
  const vec4 = K % 4 === 0 && N % 4 === 0 && (!transA || M % 4 === 0);
  const tile = vec4 ? 16 : 8;
  const rowTiles = ceilDiv(M, tile);
  const colTiles = ceilDiv(N, tile);
  const lx = lanesAlongN(rowTiles, colTiles);
  const workgroups = [ceilDiv(colTiles, lx), ceilDiv(rowTiles, 8 / lx)] as const;
  if (workgroups[1] > dev.limits.maxComputeWorkgroupsPerDimension) {
    throw new Error(
      `matmul: M = ${M} rows need ${workgroups[1]} workgroups along y, above the device's ` +
        `${dev.limits.maxComputeWorkgroupsPerDimension}; split the rows into chunks`,
    );
  }
  if (vec4) {
    dev.dispatch({
      kernel: "matmul_vec4",
      constants: { TRANS_A: transA ? 1 : 0, TRANS_B: transB ? 1 : 0 },
      bindings: [a, bb, out],
      params: new Params().u32(M).u32(N).u32(K).u32(acc).u32(lx),
      workgroups,
    });
  } else {
    dev.dispatch({
      kernel: "matmul",
      bindings: [a, bb, out],
      params: new Params().u32(M).u32(N).u32(K).u32(acc).u32(lx)
        .u32(transA ? 1 : K).u32(transA ? M : 1) // op(A) strides along m, k
        .u32(transB ? 1 : N).u32(transB ? K : 1), // op(B) strides along k, n
      workgroups,
    });
  }
  if (bb !== b) bb.dispose();
  return out;
}
