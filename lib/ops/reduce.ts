/** Deterministic reductions to a scalar: sum, and the sum of squares over many tensors. */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { fillTemplate, kernelSource, Params } from "../device/kernel_source.ts";
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

/** Most tensors in one first-stage dispatch when the device sets no binding limit. */
export const MAX_REDUCE_GROUP = 32;

/**
 * Tensors one first-stage dispatch may read on `dev`: one storage binding each plus the
 * partials, within {@link Device.tensorBindingsPerKernel} (30 on lavapipe's 32; 6 on WebGPU's
 * default 8); at most {@link MAX_REDUCE_GROUP}, at least 1.
 */
export function reduceGroupSize(dev: Device): number {
  return Math.max(1, Math.min(MAX_REDUCE_GROUP, dev.tensorBindingsPerKernel - 1));
}

const multiSources = new Map<string, string>();

/** The WGSL of the K-tensor first stage (cached). */
function multiSource(k: number): string {
  let src = multiSources.get(String(k));
  if (src !== undefined) return src;
  const fields: string[] = [];
  const bindings: string[] = [];
  const branches: string[] = [];
  for (let j = 0; j < k; j++) {
    fields.push(`  n_${j}: u32,\n  chunk_${j}: u32,\n  end_${j}: u32,`);
    bindings.push(`@group(0) @binding(${j}) var<storage, read> x_${j}: array<SF>;`);
    const start = j === 0 ? "0u" : `p.end_${j - 1}`;
    branches.push(
      `  ${j === 0 ? "" : "} else "}if (w < p.end_${j}) {
    let start = (w - ${start}) * p.chunk_${j};
    let end = min(p.n_${j}, start + p.chunk_${j});
    for (var i = start + li; i < end; i += WG) {
      acc += term(f32(x_${j}[i]));
    }`,
    );
  }
  branches.push("  }");
  bindings.push(`@group(0) @binding(${k}) var<storage, read_write> out: array<f32>;`);
  src = fillTemplate(kernelSource("reduce_sum_multi"), {
    TENSOR_FIELDS: fields.join("\n"),
    BINDINGS: bindings.join("\n"),
    TENSORS: branches.join("\n"),
  });
  multiSources.set(String(k), src);
  return src;
}

function expectFloat(t: Tensor, op: string): void {
  if (t.dtype === "i32") throw new Error(`${op}: "${t.name}" must be f32 or f16, got i32`);
}

/**
 * Σ_i (x_i or x_i²) of each tensor into one (1) tensor: stage 1 writes per-chunk partials
 * into a workspace, stage 2 sums them in one workgroup (fixed order: deterministic). Stage 1
 * reads consecutive tensors of one storage type together, up to {@link reduceGroupSize} per
 * dispatch; the partials (and so the result) are the same whatever the grouping.
 */
function reduceInto(
  dev: Device,
  xs: Tensor[],
  square: boolean,
  opts: { tag?: Tag; name?: string; groupSize?: number },
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
  const most = reduceGroupSize(dev);
  const size = opts.groupSize ?? most;
  if (!Number.isInteger(size) || size < 1 || size > most) {
    throw new Error(
      `${op}: groupSize must be an integer in 1..${most} on this device, got ${size}`,
    );
  }
  let offset = 0;
  for (let i = 0; i < xs.length;) {
    // consecutive tensors of one storage type, each bound once (WebGPU forbids binding a buffer twice)
    let j = i + 1;
    while (
      j < xs.length && j - i < size && xs[j].dtype === xs[i].dtype &&
      !xs.slice(i, j).some((x) => x.block.id === xs[j].block.id)
    ) j++;
    if (j - i === 1) {
      const { groups, chunk } = splits[i];
      dev.dispatch({
        kernel: "reduce_sum",
        bindings: [xs[i], partials],
        params: new Params().u32(xs[i].size).u32(chunk).u32(offset).u32(square ? 1 : 0),
        workgroups: [groups],
      });
      offset += groups;
    } else {
      const params = new Params().u32(offset).u32(square ? 1 : 0);
      let end = 0;
      for (let t = i; t < j; t++) {
        end += splits[t].groups;
        params.u32(xs[t].size).u32(splits[t].chunk).u32(end);
      }
      dev.dispatch({
        kernel: "reduce_sum_multi",
        source: multiSource(j - i),
        bindings: [...xs.slice(i, j), partials],
        params,
        workgroups: [end],
      });
      offset += end;
    }
    i = j;
  }
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
 * Deterministic two-stage reduction; its workspace is freed before return. `groupSize`: most
 * tensors per first-stage dispatch (default and maximum {@link reduceGroupSize}); the result
 * does not depend on it.
 */
export function sumSquares(
  dev: Device,
  xs: Tensor[],
  opts: { tag?: Tag; name?: string; groupSize?: number } = {},
): Tensor {
  if (xs.length === 0) throw new Error("sumSquares: expected at least one tensor, got none");
  return reduceInto(dev, xs, true, opts, "sumSquares");
}
