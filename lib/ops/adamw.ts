/** AdamW optimizer step (PyTorch semantics) with optional global-norm gradient clipping. */

import type { Device } from "../device/device.ts";
import { fillTemplate, kernelSource, Params } from "../device/kernel_source.ts";
import { expectShape, type Tensor } from "../device/tensor.ts";
import { ceilDiv, grid1d } from "./util.ts";

/** Hyper-parameters of one AdamW step. */
export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number t (for the bias corrections 1 − β^t). */
  step: number;
  /**
   * Clip by global norm: the gradient is scaled by min(1, maxNorm / (√normSq + 1e-6)), with
   * normSq (1) read on the device (e.g. from `sumSquares` of all gradients).
   */
  clip?: { normSq: Tensor; maxNorm: number };
  /**
   * 1 / loss scale (default 1): the gradient (and `clip.normSq`) are of the loss multiplied by
   * the scale, as in mixed precision with dynamic loss scaling.
   */
  invScale?: number;
  /**
   * Mixed precision: the f16 working copy of `param` (the f32 master weight), rewritten from
   * the updated master in the same pass.
   */
  work?: Tensor;
}

const CLIP_BINDING = "@group(0) @binding(4) var<storage, read> norm_sq: array<f32>;";
const CLIP_SCALE = "return min(1.0, p.max_norm / (sqrt(norm_sq[0]) * p.inv_scale + 1e-6));";
const workBinding = (b: number) =>
  `@group(0) @binding(${b}) var<storage, read_write> work: array<SF>;`;

/** Checks what every AdamW step needs; returns the bias corrections 1 − β1^t and 1 − β2^t. */
function checkStep(opts: Omit<AdamWOptions, "weightDecay" | "work">): { bc1: number; bc2: number } {
  const { beta1, beta2, step, clip } = opts;
  const invScale = opts.invScale ?? 1;
  if (!(invScale > 0 && Number.isFinite(invScale))) {
    throw new Error(`adamwUpdate: invScale must be a finite number > 0, got ${invScale}`);
  }
  if (!Number.isInteger(step) || step < 1) {
    throw new Error(`adamwUpdate: step must be an integer >= 1, got ${step}`);
  }
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) {
    throw new Error(`adamwUpdate: betas must lie in [0, 1), got ${beta1}, ${beta2}`);
  }
  if (clip) {
    expectShape(clip.normSq, [1], "adamwUpdate: clip.normSq");
    if (!(clip.maxNorm > 0)) {
      throw new Error(`adamwUpdate: clip.maxNorm must be > 0, got ${clip.maxNorm}`);
    }
  }
  return { bc1: 1 - beta1 ** step, bc2: 1 - beta2 ** step };
}

/** Checks one tensor's grad, moments and working copy against its (f32) parameter. */
function checkTensor(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, work?: Tensor): void {
  for (const [t, what] of [[grad, "grad"], [m, "m"], [v, "v"]] as const) {
    expectShape(t, param.shape, `adamwUpdate: ${what} (as param "${param.name}")`);
  }
  if (param.dtype !== "f32") {
    throw new Error(
      `adamwUpdate: "${param.name}" is ${param.dtype}; the updated weight (the master copy in ` +
        `mixed precision) and the moments must be f32`,
    );
  }
  if (work) expectShape(work, param.shape, `adamwUpdate: work (as param "${param.name}")`);
}

/**
 * One AdamW step in place on `param`, `m` and `v` (all shaped like `param`):
 * p ← p − lr·wd·p; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 * p ← p − lr·(m/(1−β1^t)) / (√(v/(1−β2^t)) + eps).
 */
export function adamwUpdate(
  dev: Device,
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  opts: AdamWOptions,
): void {
  checkTensor(param, grad, m, v, opts.work);
  const { bc1, bc2 } = checkStep(opts);
  const { lr, beta1, beta2, eps, weightDecay, clip, work } = opts;
  const n = param.size;
  const [nx, ny] = grid1d(ceilDiv(n, 256));
  dev.dispatch({
    kernel: "adamw",
    source: fillTemplate(kernelSource("adamw"), {
      CLIP_BINDING: clip ? CLIP_BINDING : "",
      CLIP_SCALE: clip ? CLIP_SCALE : "return 1.0;",
      WORK_BINDING: work ? workBinding(clip ? 5 : 4) : "",
      WORK_STORE: work ? "work[i] = SF(pi);" : "",
    }),
    bindings: [param, grad, m, v, ...(clip ? [clip.normSq] : []), ...(work ? [work] : [])],
    params: new Params().u32(n).f32(1 - lr * weightDecay).f32(beta1).f32(beta2).f32(eps)
      .f32(lr / bc1).f32(Math.sqrt(bc2)).f32(clip?.maxNorm ?? 0).u32(nx).f32(opts.invScale ?? 1),
    workgroups: [nx, ny],
  });
}

/** One tensor of a multi-tensor step ({@link adamwUpdateMulti}). */
export interface AdamWTensor {
  /** The f32 weight updated in place (the master copy in mixed precision). */
  param: Tensor;
  /** Its gradient (f32 or f16 storage). */
  grad: Tensor;
  /** First moment (f32), updated in place. */
  m: Tensor;
  /** Second moment (f32), updated in place. */
  v: Tensor;
  /** Decoupled weight decay of this tensor (0 for norms and biases). */
  weightDecay: number;
  /** Mixed precision: the f16 working copy, rewritten from the updated `param`. */
  work?: Tensor;
}

/** Most tensors in one multi-tensor AdamW dispatch when the device sets no binding limit. */
export const MAX_ADAMW_GROUP = 16;

/**
 * Tensors one {@link adamwUpdateMulti} dispatch may take on `dev`: 4 storage bindings per
 * tensor (param, grad, m, v), 5 with working copies, plus `norm_sq` when clipping, within
 * {@link Device.tensorBindingsPerKernel} (7 on lavapipe's 32; 1 on WebGPU's default 8); at
 * most {@link MAX_ADAMW_GROUP}, at least 1.
 */
export function adamwGroupSize(dev: Device, opts: { clip: boolean; work: boolean }): number {
  const free = dev.tensorBindingsPerKernel - (opts.clip ? 1 : 0);
  return Math.max(1, Math.min(MAX_ADAMW_GROUP, Math.floor(free / (opts.work ? 5 : 4))));
}

/**
 * Masked elements a group may carry: the kernel runs max(n_j) invocations, and an invocation past
 * a smaller tensor's end still evaluates that tensor's branch under a mask (lavapipe predicates
 * `if`s), so a group wastes Σ_j (max − n_j) element slots: at most this many, or an eighth of the
 * group's elements.
 */
export const ADAMW_GROUP_WASTE = 4096;

/**
 * Groups for {@link adamwUpdateMulti}: indices into `tensors` (each `{size, key}`), only equal
 * keys together (e.g. gradient storage and working copy), at most `most` per group. Tensors are
 * sorted by size (stable) and packed greedily while the masked slots stay within
 * {@link ADAMW_GROUP_WASTE}, so same-shape weights of different layers share a dispatch.
 */
export function adamwGroups(
  tensors: readonly { size: number; key: string }[],
  most: number,
): number[][] {
  const order = tensors.map((_, i) => i).sort((a, b) => {
    const [x, y] = [tensors[a], tensors[b]];
    return x.key < y.key ? -1 : x.key > y.key ? 1 : x.size - y.size || a - b;
  });
  const groups: number[][] = [];
  let cur: number[] = [];
  let max = 0;
  let sum = 0;
  let waste = 0;
  for (const i of order) {
    const { size, key } = tensors[i];
    const w = waste + cur.length * (size - max);
    const fits = cur.length > 0 && cur.length < most && tensors[cur[0]].key === key &&
      w <= Math.max(ADAMW_GROUP_WASTE, (sum + size) / 8);
    if (fits) [waste, sum] = [w, sum + size];
    else {
      if (cur.length > 0) groups.push(cur);
      [cur, waste, sum] = [[], 0, size];
    }
    cur.push(i);
    max = size;
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}

const multiSources = new Map<string, string>();

/** The WGSL of the K-tensor kernel (cached). */
function multiSource(k: number, clip: boolean, work: boolean, vec4: boolean): string {
  const key = `${k}/${clip}/${work}/${vec4}`;
  let src = multiSources.get(key);
  if (src !== undefined) return src;
  const b = work ? 5 : 4;
  const fields: string[] = [];
  const bindings: string[] = [];
  const branches: string[] = [];
  for (let j = 0; j < k; j++) {
    fields.push(`  n_${j}: u32,\n  decay_${j}: f32,`);
    const decl = (o: number, access: string, name: string, elem: string) =>
      `@group(0) @binding(${b * j + o}) var<storage, ${access}> ${name}_${j}: array<${elem}>;`;
    const [f, sf] = vec4 ? ["vec4<f32>", "vec4<SF>"] : ["f32", "SF"];
    bindings.push(
      decl(0, "read_write", "param", f),
      decl(1, "read", "grad", sf),
      decl(2, "read_write", "m", f),
      decl(3, "read_write", "v", f),
      ...(work ? [decl(4, "read_write", "work", sf)] : []),
    );
    branches.push(
      `  if (i < p.n_${j}) {
    let r = adamw(param_${j}[i], VF(grad_${j}[i]), m_${j}[i], v_${j}[i], p.decay_${j});
    m_${j}[i] = r.m;
    v_${j}[i] = r.v;
    param_${j}[i] = r.param;${work ? `\n    work_${j}[i] = ${sf}(r.param);` : ""}
  }`,
    );
  }
  src = fillTemplate(kernelSource("adamw_multi"), {
    TENSOR_FIELDS: fields.join("\n"),
    BINDINGS: bindings.join("\n"),
    CLIP_BINDING: clip
      ? `@group(0) @binding(${b * k}) var<storage, read> norm_sq: array<f32>;`
      : "",
    CLIP_SCALE: clip ? CLIP_SCALE : "return 1.0;",
    TENSORS: branches.join("\n"),
    VEC: vec4 ? "alias VF = vec4<f32>;" : "alias VF = f32;",
  });
  multiSources.set(key, src);
  return src;
}

/**
 * The AdamW step of {@link adamwUpdate} on several tensors in one dispatch (the same update of
 * every element; each tensor with its own weight decay): invocation i updates element i of every
 * tensor longer than i, so the dispatch covers the largest tensor and tensors of similar sizes
 * belong together ({@link adamwGroups}). All tensors have working copies or none; their gradients
 * share one storage type. Throws when there are more tensors than {@link adamwGroupSize} allows
 * on `dev`.
 */
export function adamwUpdateMulti(
  dev: Device,
  tensors: readonly AdamWTensor[],
  opts: Omit<AdamWOptions, "weightDecay" | "work">,
): void {
  if (tensors.length === 0) throw new Error("adamwUpdateMulti: expected at least one tensor");
  const work = tensors[0].work !== undefined;
  for (const t of tensors) {
    checkTensor(t.param, t.grad, t.m, t.v, t.work);
    if ((t.work !== undefined) !== work) {
      throw new Error(
        `adamwUpdateMulti: "${t.param.name}" ${work ? "lacks" : "has"} a working copy, unlike ` +
          `"${tensors[0].param.name}"; group tensors with working copies apart from those without`,
      );
    }
  }
  const { bc1, bc2 } = checkStep(opts);
  const { lr, beta1, beta2, eps, clip } = opts;
  const k = tensors.length;
  const most = adamwGroupSize(dev, { clip: !!clip, work });
  if (k > most) {
    throw new Error(
      `adamwUpdateMulti: ${k} tensors, but one dispatch takes at most ${most} on this device ` +
        `(maxStorageBuffersPerShaderStage ${dev.limits.maxStorageBuffersPerShaderStage}); ` +
        `split them into groups of adamwGroupSize(dev, …)`,
    );
  }
  // vec4 work units when every size allows (the kernel then counts vec4s)
  const w = tensors.every((t) => t.param.size % 4 === 0) ? 4 : 1;
  const [nx, ny] = grid1d(ceilDiv(Math.max(...tensors.map((t) => t.param.size / w)), 256));
  const params = new Params().f32(beta1).f32(beta2).f32(eps).f32(lr / bc1).f32(Math.sqrt(bc2))
    .f32(clip?.maxNorm ?? 0).u32(nx).f32(opts.invScale ?? 1);
  for (const t of tensors) params.u32(t.param.size / w).f32(1 - lr * t.weightDecay);
  dev.dispatch({
    kernel: "adamw_multi",
    source: multiSource(k, !!clip, work, w === 4),
    bindings: [
      ...tensors.flatMap((t) => [t.param, t.grad, t.m, t.v, ...(work ? [t.work!] : [])]),
      ...(clip ? [clip.normSq] : []),
    ],
    params,
    workgroups: [nx, ny],
  });
}
