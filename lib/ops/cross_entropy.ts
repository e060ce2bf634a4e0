/** Cross-entropy over a vocabulary with optional logit soft-capping (Gemma-2) and ignored targets. */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { fillTemplate, kernelSource, Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
import { unrollLoops } from "./unroll.ts";
import { grid1d } from "./util.ts";

/** Options shared by the forward and the backward. */
export interface CrossEntropyOptions {
  /** Soft-cap c: z = c·tanh(x/c) before the log-softmax; off when absent or 0. */
  softcap?: number;
  /** Target value whose rows are ignored (loss 0, gradient 0). Default −100. */
  ignoreIndex?: number;
}

function check(logits: Tensor, targets: Tensor, op: string, softcap: number): [number, number] {
  if (logits.shape.length !== 2 || logits.dtype === "i32") {
    throw new Error(
      `${op}: logits: expected f32 or f16 [N, V], got ${logits.dtype} [${logits.shape.join(", ")}]`,
    );
  }
  const [N, V] = logits.shape;
  if (targets.dtype !== "i32" || targets.shape.length !== 1 || targets.shape[0] !== N) {
    throw new Error(
      `${op}: targets: expected i32 [${N}], got ${targets.dtype} [${targets.shape.join(", ")}]`,
    );
  }
  if (!(softcap >= 0) || !Number.isFinite(softcap)) {
    throw new Error(`${op}: softcap must be a finite number >= 0 (0 = off), got ${softcap}`);
  }
  return [N, V];
}

/**
 * losses (N) = logsumexp(z) − z[target] per row, z = soft-capped logits; 0 on rows whose
 * target is `ignoreIndex`, NaN on rows whose target is outside 0..V-1.
 *
 * @param logits (N, V)
 * @param targets i32 (N)
 */
export function crossEntropyLosses(
  dev: Device,
  logits: Tensor,
  targets: Tensor,
  opts: CrossEntropyOptions & { tag?: Tag; name?: string } = {},
): Tensor {
  const softcap = opts.softcap ?? 0;
  const [N, V] = check(logits, targets, "crossEntropyLosses", softcap);
  const losses = dev.tensor([N], {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "ce.losses",
    dtype: "f32", // loss statistics stay f32 in mixed precision
  }); // (N)
  if (V % 4 === 0) {
    rowPass(dev, logits, targets, { losses }, softcap, opts.ignoreIndex ?? -100, 0);
    return losses;
  }
  const [nx, ny] = grid1d(N);
  dev.dispatch({
    kernel: "cross_entropy_losses",
    bindings: [logits, targets, losses],
    params: new Params().u32(N).u32(V).f32(softcap).i32(opts.ignoreIndex ?? -100).u32(nx),
    workgroups: [nx, ny],
  });
  return losses;
}

/**
 * dlogits (N, V) = gradScale · (softmax(z) − onehot(target)) · dz/dx, with dz/dx = 1 − (z/c)²
 * under a soft-cap; zero rows for ignored targets.
 *
 * With `inPlace` the logits are overwritten and returned (the same tensor object; nothing is
 * allocated). Otherwise a new tensor (tag `logits` unless `tag` says otherwise) is returned.
 */
export function crossEntropyBackward(
  dev: Device,
  logits: Tensor,
  targets: Tensor,
  opts: CrossEntropyOptions & { gradScale: number; inPlace?: boolean; tag?: Tag; name?: string },
): Tensor {
  const softcap = opts.softcap ?? 0;
  const [N, V] = check(logits, targets, "crossEntropyBackward", softcap);
  let out = logits; // (N, V)
  if (!opts.inPlace) {
    out = dev.tensor([N, V], { tag: opts.tag ?? "logits", name: opts.name ?? "ce.dlogits" });
  }
  if (V % 4 === 0) {
    // Out of place: read the logits, write the gradient (no copy first).
    const dlogits = opts.inPlace ? "inPlace" : out;
    rowPass(dev, logits, targets, { dlogits }, softcap, opts.ignoreIndex ?? -100, opts.gradScale);
    return out;
  }
  if (!opts.inPlace) dev.copy(logits, 0, out, 0, N * V);
  const [nx, ny] = grid1d(N);
  dev.dispatch({
    kernel: "cross_entropy_backward",
    bindings: [out, targets],
    params: new Params().u32(N).u32(V).f32(softcap).i32(opts.ignoreIndex ?? -100)
      .f32(opts.gradScale).u32(nx),
    workgroups: [nx, ny],
  });
  return out;
}

/**
 * The fused forward + backward of a head chunk: returns losses (N) like
 * {@link crossEntropyLosses} and overwrites `logits` (N, V) with the gradient of
 * {@link crossEntropyBackward} (`gradScale` · (softmax(z) − onehot) · dz/dx), in one dispatch
 * that reads each row twice and writes it once (the two separate ops read it three times).
 * Allocates exactly what {@link crossEntropyLosses} does.
 */
export function crossEntropyFused(
  dev: Device,
  logits: Tensor,
  targets: Tensor,
  opts: CrossEntropyOptions & { gradScale: number; tag?: Tag; name?: string },
): Tensor {
  const softcap = opts.softcap ?? 0;
  const [N, V] = check(logits, targets, "crossEntropyFused", softcap);
  const losses = dev.tensor([N], {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "ce.losses",
    dtype: "f32", // loss statistics stay f32 in mixed precision
  }); // (N)
  const ignore = opts.ignoreIndex ?? -100;
  if (V % 4 === 0) {
    rowPass(dev, logits, targets, { losses, dlogits: "inPlace" }, softcap, ignore, opts.gradScale);
    return losses;
  }
  const [nx, ny] = grid1d(N);
  dev.dispatch({
    kernel: "cross_entropy_losses",
    bindings: [logits, targets, losses],
    params: new Params().u32(N).u32(V).f32(softcap).i32(ignore).u32(nx),
    workgroups: [nx, ny],
  });
  dev.dispatch({
    kernel: "cross_entropy_backward",
    bindings: [logits, targets],
    params: new Params().u32(N).u32(V).f32(softcap).i32(ignore).f32(opts.gradScale).u32(nx),
    workgroups: [nx, ny],
  });
  return losses;
}

/**
 * Most logit texels (vec4) each thread of `cross_entropy_fused` holds in registers; with a
 * soft-cap {@link CE_REGISTER_TEXELS_CAPPED}, as each unrolled tanh slows LLVM's compile. Cold
 * compiles on lavapipe (Mesa's shader cache off, V=2048): 1.2 s with K = 32 (0.3 s for the
 * previous streaming kernel); with a soft-cap 0.9 s (K = 8), 2.0 s (K = 32).
 */
export const CE_REGISTER_TEXELS = 32;
/**
 * See {@link CE_REGISTER_TEXELS}. Soft-capped fused runs (N=1024, V=2048, lavapipe): K = 8, 16,
 * 32 at 50, 43, 37 ms of CPU.
 */
export const CE_REGISTER_TEXELS_CAPPED = 16;
/** Most threads per row of `cross_entropy_fused` (beyond L·K texels, the rest is streamed). */
export const CE_MAX_THREADS = 256;
/** Fewest threads per row, and threads per workgroup that rows are packed into. */
const CE_MIN_THREADS = 8;
const CE_WORKGROUP = 64;

/**
 * The shape of a `cross_entropy_fused` dispatch for rows of V/4 = `v4` texels: `threads` (L)
 * per row, the smallest power of two with which `texels` (K ≤ {@link CE_REGISTER_TEXELS}, or
 * {@link CE_REGISTER_TEXELS_CAPPED} when `capped`) registers per thread hold the whole row (at
 * most {@link CE_MAX_THREADS}; larger rows stream their tail), and `rows` (R) rows per
 * workgroup of up to 64 threads.
 *
 * Measured on lavapipe (N=1024, V=2048, fused in place, process CPU time, interleaved): the row
 * held in registers (one read of the logits instead of two) halves the kernel's time (48 → 23
 * ms); 8, 16 and 32 threads per row run at 22, 24 and 28 ms. 16 threads hold 32 texels each at
 * V=2048, a register budget real GPUs still run well.
 */
export function crossEntropyShape(
  v4: number,
  capped = false,
): { threads: number; texels: number; rows: number } {
  const most = capped ? CE_REGISTER_TEXELS_CAPPED : CE_REGISTER_TEXELS;
  let threads = CE_MIN_THREADS;
  while (threads < CE_MAX_THREADS && threads * most < v4) threads *= 2;
  const texels = Math.max(1, Math.min(most, Math.ceil(v4 / threads)));
  return { threads, texels, rows: Math.max(1, CE_WORKGROUP / threads) };
}

const fusedSources = new Map<string, string>();

/**
 * One `cross_entropy_fused` dispatch (V % 4 = 0): the losses, the gradient (in place over the
 * logits, or into a given tensor), or both.
 */
function rowPass(
  dev: Device,
  logits: Tensor,
  targets: Tensor,
  out: { losses?: Tensor; dlogits?: Tensor | "inPlace" },
  softcap: number,
  ignoreIndex: number,
  gradScale: number,
): void {
  const [N, V] = logits.shape;
  const loss = out.losses !== undefined;
  const grad = out.dlogits !== undefined;
  const inPlace = out.dlogits === "inPlace";
  const capped = softcap > 0;
  const { threads, texels, rows } = crossEntropyShape(V / 4, capped);
  const tail = threads * texels < V / 4;
  const key = `${loss}${grad}${inPlace}${capped}|${threads}|${texels}|${rows}|${tail}`;
  let source = fusedSources.get(key);
  if (source === undefined) {
    const decl = [
      `@group(0) @binding(0) var<storage, ${inPlace ? "read_write" : "read"}> logits: ` +
      `array<vec4<SF>>;`,
      `@group(0) @binding(1) var<storage, read> targets: array<i32>;`,
    ];
    let b = 2;
    if (loss) decl.push(`@group(0) @binding(${b++}) var<storage, read_write> losses: array<f32>;`);
    if (grad && !inPlace) {
      decl.push(`@group(0) @binding(${b++}) var<storage, read_write> dlogits: array<vec4<SF>>;`);
    }
    decl.push(`fn ld(i: u32) -> vec4<f32> { return vec4<f32>(logits[i]); }`);
    // The kernel calls st / putLoss only under GRAD / LOSS; WGSL still needs them defined.
    const target = inPlace ? "logits[i] = vec4<SF>(v);" : grad ? "dlogits[i] = vec4<SF>(v);" : "";
    decl.push(`fn st(i: u32, v: vec4<f32>) { ${target} }`);
    decl.push(`fn putLoss(row: u32, v: f32) { ${loss ? "losses[row] = v;" : ""} }`);
    source = unrollLoops(
      fillTemplate(kernelSource("cross_entropy_fused"), {
        BINDINGS: decl.join("\n"),
        L: threads,
        R: rows,
        K: texels,
        LOSS: String(loss),
        GRAD: String(grad),
        CAPPED: String(capped),
        TAIL: String(tail),
      }),
      { K: texels },
    );
    fusedSources.set(key, source);
  }
  const bindings = [logits, targets];
  if (out.losses) bindings.push(out.losses);
  if (out.dlogits && out.dlogits !== "inPlace") bindings.push(out.dlogits);
  const [nx, ny] = grid1d(Math.ceil(N / rows));
  dev.dispatch({
    kernel: "cross_entropy_fused",
    source,
    bindings,
    params: new Params().u32(N).u32(V / 4).f32(softcap).i32(ignoreIndex).f32(gradScale).u32(nx),
    workgroups: [nx, ny],
  });
}
