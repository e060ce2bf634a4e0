/**
 * Linear layers y = x·Wᵀ + b with W stored (out, in), as Hugging Face stores it, and their
 * gradients. All products go through {@link matmul}.
 */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import { expectShape, type Tensor } from "../device/tensor.ts";
import { matmul, matmulPairCols, matmulPairRowsAccumulate, matmulSum2 } from "./matmul.ts";
import { ceilDiv, grid1d } from "./util.ts";

/** Options of the linear ops that allocate an output. */
export interface LinearOptions {
  /** Tag of the output (default `"activations"`). */
  tag?: Tag;
  /** Name of the output. */
  name?: string;
}

function expect2d(t: Tensor, what: string): void {
  if (t.shape.length !== 2) {
    throw new Error(`${what}: "${t.name}" must be 2-D, got [${t.shape.join(", ")}]`);
  }
}

/** y (N, out) = x (N, in) · wᵀ (w is (out, in)) + bias (out) when given. */
export function linearForward(
  dev: Device,
  x: Tensor,
  w: Tensor,
  bias?: Tensor,
  opts: LinearOptions = {},
): Tensor {
  expect2d(x, "linearForward x");
  expect2d(w, "linearForward w");
  const [N, inF] = x.shape;
  const outF = w.shape[0];
  expectShape(w, [outF, inF], `linearForward: weight (out, in = ${inF} features of x)`);
  const name = opts.name ?? "linear";
  const tag = opts.tag ?? "activations";
  if (!bias) return matmul(dev, x, w, { transB: true, tag, name });
  expectShape(bias, [outF], `linearForward: bias (out = ${outF})`);
  const y = dev.tensor([N, outF], { tag, name });
  const total = N * outF;
  if (total > 0) {
    const [nx, ny] = grid1d(ceilDiv(total, 256));
    dev.dispatch({
      kernel: "matmul_bias_fill",
      bindings: [bias, y],
      params: new Params().u32(total).u32(outF).u32(nx),
      workgroups: [nx, ny],
    });
  }
  return matmul(dev, x, w, { transB: true, out: y, accumulate: true });
}

/**
 * y (N, out) = x · wᵀ and y2 = x · w2ᵀ (w, w2 (out, in) alike, no bias): two projections of one
 * input in one pass ({@link matmulPairCols}). New tensors named `names`.
 */
export function linearForwardPair(
  dev: Device,
  x: Tensor,
  w: Tensor,
  w2: Tensor,
  opts: { tag?: Tag; names: [string, string] },
): [Tensor, Tensor] {
  expect2d(x, "linearForwardPair x");
  expect2d(w, "linearForwardPair w");
  expectShape(w, [w.shape[0], x.shape[1]], `linearForwardPair: weight (out, in = ${x.shape[1]})`);
  return matmulPairCols(dev, x, w, w2, opts);
}

/** dx (N, in) = dy (N, out) · w (out, in). A new tensor. */
export function linearBackwardInput(
  dev: Device,
  dy: Tensor,
  w: Tensor,
  opts: LinearOptions = {},
): Tensor {
  expect2d(dy, "linearBackwardInput dy");
  expect2d(w, "linearBackwardInput w");
  expectShape(w, [dy.shape[1], -1], `linearBackwardInput: weight (out = ${dy.shape[1]}, in)`);
  return matmul(dev, dy, w, { tag: opts.tag ?? "activations", name: opts.name ?? "linear.dx" });
}

/**
 * dx (N, in) += dy (N, out) · w (out, in): a second input-gradient contribution accumulated in
 * the matmul itself (no temporary, no separate add).
 */
export function linearBackwardInputAccumulate(
  dev: Device,
  dy: Tensor,
  w: Tensor,
  dx: Tensor,
): void {
  expect2d(dy, "linearBackwardInputAccumulate dy");
  expect2d(w, "linearBackwardInputAccumulate w");
  expectShape(
    w,
    [dy.shape[1], -1],
    `linearBackwardInputAccumulate: weight (out = ${dy.shape[1]}, in)`,
  );
  expectShape(dx, [dy.shape[0], w.shape[1]], "linearBackwardInputAccumulate: dx (N, in)");
  matmul(dev, dy, w, { out: dx, accumulate: true });
}

/**
 * dx (N, in) = dy (N, out) · w (out, in) + dy2 · w2 (same shapes): the input gradient of two
 * projections of one input in one pass ({@link matmulSum2}). A new tensor.
 */
export function linearBackwardInputPair(
  dev: Device,
  dy: Tensor,
  w: Tensor,
  dy2: Tensor,
  w2: Tensor,
  opts: LinearOptions = {},
): Tensor {
  for (const [t, what] of [[dy, "dy"], [w, "w"], [dy2, "dy2"], [w2, "w2"]] as const) {
    expect2d(t, `linearBackwardInputPair ${what}`);
  }
  expectShape(w, [dy.shape[1], -1], `linearBackwardInputPair: weight (out = ${dy.shape[1]}, in)`);
  return matmulSum2(dev, dy, w, dy2, w2, {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "linear.dx",
  });
}

/** dx (N, in) += dy · w + dy2 · w2: {@link linearBackwardInputPair} accumulated into dx. */
export function linearBackwardInputPairAccumulate(
  dev: Device,
  dy: Tensor,
  w: Tensor,
  dy2: Tensor,
  w2: Tensor,
  dx: Tensor,
): void {
  for (const [t, what] of [[dy, "dy"], [w, "w"], [dy2, "dy2"], [w2, "w2"]] as const) {
    expect2d(t, `linearBackwardInputPairAccumulate ${what}`);
  }
  expectShape(dx, [dy.shape[0], w.shape[1]], "linearBackwardInputPairAccumulate: dx (N, in)");
  matmulSum2(dev, dy, w, dy2, w2, { out: dx, accumulate: true });
}

/**
 * dw (out, in) += dyᵀ · x and dw2 += dy2ᵀ · x (dy, dy2 (N, out)): the weight gradients of two
 * projections of one input x (N, in) in one pass over x ({@link matmulPairRowsAccumulate}).
 */
export function linearBackwardWeightPair(
  dev: Device,
  dy: Tensor,
  dy2: Tensor,
  x: Tensor,
  dw: Tensor,
  dw2: Tensor,
): void {
  expect2d(dy, "linearBackwardWeightPair dy");
  expect2d(x, "linearBackwardWeightPair x");
  expectShape(
    x,
    [dy.shape[0], -1],
    `linearBackwardWeightPair: x (N = ${dy.shape[0]} rows of dy, in)`,
  );
  expectShape(dy2, dy.shape, "linearBackwardWeightPair: dy2 (as dy)");
  expectShape(dw, [dy.shape[1], x.shape[1]], "linearBackwardWeightPair: dw (out, in)");
  expectShape(dw2, [dy.shape[1], x.shape[1]], "linearBackwardWeightPair: dw2 (out, in)");
  matmulPairRowsAccumulate(dev, dy, dy2, x, dw, dw2);
}

/** dw (out, in) += dyᵀ (out, N) · x (N, in). */
export function linearBackwardWeight(dev: Device, dy: Tensor, x: Tensor, dw: Tensor): void {
  expect2d(dy, "linearBackwardWeight dy");
  expect2d(x, "linearBackwardWeight x");
  expectShape(x, [dy.shape[0], -1], `linearBackwardWeight: x (N = ${dy.shape[0]} rows of dy, in)`);
  expectShape(dw, [dy.shape[1], x.shape[1]], "linearBackwardWeight: dw (out, in)");
  matmul(dev, dy, x, { transA: true, out: dw, accumulate: true });
}

/** db (out) += Σ_rows dy (N, out). */
export function biasBackward(dev: Device, dy: Tensor, db: Tensor): void {
  expect2d(dy, "biasBackward dy");
  const [N, outF] = dy.shape;
  expectShape(db, [outF], `biasBackward: db (out = ${outF})`);
  if (outF === 0) return;
  dev.dispatch({
    kernel: "matmul_bias_grad",
    bindings: [dy, db],
    params: new Params().u32(N).u32(outF),
    workgroups: [ceilDiv(outF, 64)],
  });
}
