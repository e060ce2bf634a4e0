/**
 * NF4 weights on the device, and the linear products that dequantise them on the fly.
 *
 * An {@link Nf4Weight} is a frozen (N, K) weight in bitsandbytes' NF4 storage with
 * double-quantised absmax (lib/reference/nf4.ts), held in three ordinary tensors (tag
 * `weights`, or the tag given) that WGSL reads as 32-bit words:
 *
 * | tensor | dtype | elements | content |
 * |---|---|---|---|
 * | `<name>.codes` | i32 | ⌈n/8⌉ | the packed bytes, byte j of the file at byte j (little-endian words) |
 * | `<name>.absmax` | i32 | ⌈⌈n/64⌉/4⌉ | the 8-bit absmax codes, likewise |
 * | `<name>.quant_state` | f32 | 273 + ⌈⌈n/64⌉/256⌉ | NF4 table (16), dynamic map (256), offset, per-256-block constants |
 *
 * with n = N·K. The tables are per weight, as bitsandbytes keeps them (`quant_map`,
 * `nested_quant_map` are per-weight tensors there too). Device bytes, the same on WebGPU and the
 * meta device ({@link nf4DeviceBytes}): 4⌈n/8⌉ + 4⌈⌈n/64⌉/4⌉ + 4(273 + ⌈⌈n/64⌉/256⌉) — the
 * file's ⌈n/2⌉ + ⌈n/64⌉ + 4⌈⌈n/64⌉/256⌉ + 4 (`nf4Bytes`) rounded up to words, plus the 1088
 * bytes of tables. The f32 tables are counted as f32 on every device, bf16 counting included.
 *
 * Kernels: `nf4_matmul` (Y = X·Wᵀ) and `nf4_matmul_dx` (dX = dY·W), one output column by 8
 * rows per invocation, f32 accumulation, activations f32 or f16 (the kernels are dtype-generic);
 * `nf4_matmul_tex` and `nf4_matmul_dx_tex` read the activation through a staged texture (a
 * `workspace` copy, freed before return) when the shapes allow ({@link nf4StagesInput}); the
 * latter computes 4 columns per invocation, decoding 4 weights per word load and block scale.
 * A frozen base has no weight gradient, so these two are all a QLoRA layer needs of its base.
 */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
import { canStageAsTexture } from "../device/texture.ts";
import { ABSMAX_BLOCK, NF4_BLOCK, NF4_TABLE_FLOATS, type Nf4Quantized } from "../reference/nf4.ts";
import { withStagedTextures } from "./staging.ts";
import { ceilDiv } from "./util.ts";

/** Rows of the output each invocation computes (kernels/nf4_matmul*.wgsl). */
const ROWS_PER_INVOCATION = 8;
/** Invocations per workgroup, along the output columns. */
const WORKGROUP = 64;

/** Device bytes of one NF4 weight of `rows × cols`, per tensor and in total (see module doc). */
export function nf4DeviceBytes(
  rows: number,
  cols: number,
): { codes: number; absmax: number; quantState: number; total: number } {
  const { codes, absmax, state } = nf4Sizes(rows, cols);
  const b = { codes: 4 * codes, absmax: 4 * absmax, quantState: 4 * state };
  return { ...b, total: b.codes + b.absmax + b.quantState };
}

function nf4Sizes(rows: number, cols: number): { codes: number; absmax: number; state: number } {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows <= 0 || cols <= 0) {
    throw new Error(`NF4 weight: rows and cols must be positive integers, got ${rows} × ${cols}`);
  }
  const n = rows * cols;
  if (n >= 2 ** 32) {
    throw new Error(
      `NF4 weight ${rows} × ${cols}: ${n} elements exceed the kernels' 32-bit element index`,
    );
  }
  const blocks = ceilDiv(n, NF4_BLOCK);
  return {
    codes: ceilDiv(n, 8),
    absmax: ceilDiv(blocks, 4),
    state: NF4_TABLE_FLOATS + ceilDiv(blocks, ABSMAX_BLOCK),
  };
}

/** Options of a new {@link Nf4Weight}. */
export interface Nf4WeightOptions {
  /** Name prefix of the three tensors (e.g. `model.layers.0.self_attn.q_proj.weight`). */
  name: string;
  /** Accounting tag (default `"weights"`). */
  tag?: Tag;
}

/** A frozen (rows, cols) = (N, K) weight in NF4 on a device (see the module doc). */
export class Nf4Weight {
  /**
   * Wraps the three tensors (use {@link Nf4Weight.alloc} or {@link Nf4Weight.upload}).
   * @param name Name prefix.
   * @param rows N, the output features.
   * @param cols K, the input features.
   * @param codes Packed 4-bit codes, i32 words.
   * @param absmax 8-bit absmax codes, i32 words.
   * @param quantState f32 tables, offset and per-256-block constants.
   */
  constructor(
    readonly name: string,
    readonly rows: number,
    readonly cols: number,
    readonly codes: Tensor,
    readonly absmax: Tensor,
    readonly quantState: Tensor,
  ) {}

  /** Allocates the tensors of a (rows, cols) NF4 weight without data (e.g. to plan on meta). */
  static alloc(dev: Device, rows: number, cols: number, opts: Nf4WeightOptions): Nf4Weight {
    const s = nf4Sizes(rows, cols);
    const tag = opts.tag ?? "weights";
    const codes = dev.tensor([s.codes], { tag, name: `${opts.name}.codes`, dtype: "i32" });
    const absmax = dev.tensor([s.absmax], { tag, name: `${opts.name}.absmax`, dtype: "i32" });
    const quantState = dev.tensor([s.state], {
      tag,
      name: `${opts.name}.quant_state`,
      dtype: "f32",
      countAs: "f32",
    });
    return new Nf4Weight(opts.name, rows, cols, codes, absmax, quantState);
  }

  /** A device copy of a quantised 2-D weight (from `quantizeNf4` or a quantised checkpoint). */
  static upload(dev: Device, q: Nf4Quantized, opts: Nf4WeightOptions): Nf4Weight {
    if (q.shape.length !== 2) {
      throw new Error(
        `NF4 weight "${opts.name}": shape [${q.shape.join(", ")}] must be 2-D (out, in)`,
      );
    }
    const [rows, cols] = q.shape;
    const n = rows * cols;
    const blocks = ceilDiv(n, NF4_BLOCK);
    if (
      q.packed.length !== ceilDiv(n, 2) || q.absmax.length !== blocks ||
      q.nestedAbsmax.length !== ceilDiv(blocks, ABSMAX_BLOCK) || q.quantMap.length !== 16 ||
      q.nestedMap.length !== 256
    ) {
      throw new Error(
        `NF4 weight "${opts.name}" [${rows}, ${cols}]: expected ${ceilDiv(n, 2)} packed bytes, ` +
          `${blocks} absmax codes, ${ceilDiv(blocks, ABSMAX_BLOCK)} nested absmax, 16 + 256 ` +
          `table values; got ${q.packed.length}, ${q.absmax.length}, ${q.nestedAbsmax.length}, ` +
          `${q.quantMap.length} + ${q.nestedMap.length}`,
      );
    }
    const w = Nf4Weight.alloc(dev, rows, cols, opts);
    try {
      dev.write(w.codes, bytesAsWords(q.packed, w.codes.size));
      dev.write(w.absmax, bytesAsWords(q.absmax, w.absmax.size));
      const state = new Float32Array(w.quantState.size);
      state.set(q.quantMap, 0);
      state.set(q.nestedMap, 16);
      state[272] = q.offset;
      state.set(q.nestedAbsmax, NF4_TABLE_FLOATS);
      dev.write(w.quantState, state);
    } catch (e) {
      w.dispose();
      throw e;
    }
    return w;
  }

  /** The weight's (out, in) = (rows, cols) shape, as a Parameter's. */
  get shape(): readonly [number, number] {
    return [this.rows, this.cols];
  }

  /** Bytes held on the device by the three tensors. */
  get bytes(): number {
    return this.codes.bytes + this.absmax.bytes + this.quantState.bytes;
  }

  /** Frees the three tensors. */
  dispose(): void {
    this.codes.dispose();
    this.absmax.dispose();
    this.quantState.dispose();
  }
}

/** `bytes` zero-padded to `words` little-endian 32-bit words. */
function bytesAsWords(bytes: Uint8Array, words: number): Int32Array {
  const buf = new Uint8Array(words * 4);
  buf.set(bytes);
  return new Int32Array(buf.buffer);
}

/**
 * Whether an activation `x` qualifies to be read through a staged texture by the NF4 products:
 * its columns are a multiple of 4 and it can be staged (`canStageAsTexture`, the device's float
 * storage). {@link nf4Linear} then stages X; {@link nf4LinearInputGrad} stages dY when, in
 * addition, the weight's K is a multiple of 4. Decided by shapes and dtypes alone, so the meta
 * device stages the same `workspace` texture.
 */
export function nf4StagesInput(dev: Device, x: Tensor, staging = true): boolean {
  return staging && x.shape.length === 2 && x.shape[1] % 4 === 0 && x.dtype === dev.floatType &&
    canStageAsTexture(x);
}

/** Options of {@link nf4Linear} and {@link nf4LinearInputGrad}. */
export interface Nf4MatmulOptions {
  /** Write into this tensor instead of allocating one. */
  out?: Tensor;
  /** Add the product to `out` (requires `out`). */
  accumulate?: boolean;
  /** Tag of a newly allocated output (default `"activations"`). */
  tag?: Tag;
  /** Name of a newly allocated output. */
  name?: string;
  /**
   * Read the activation through a staged texture when it qualifies ({@link nf4StagesInput};
   * default true); false forces the storage-load kernels (for tests and benchmarks).
   */
  staging?: boolean;
}

function run(
  dev: Device,
  kernel: "nf4_matmul" | "nf4_matmul_dx",
  a: Tensor,
  w: Nf4Weight,
  inner: number,
  outer: number,
  opts: Nf4MatmulOptions,
): Tensor {
  const op = kernel === "nf4_matmul" ? "nf4Linear" : "nf4LinearInputGrad";
  if (a.shape.length !== 2 || a.shape[1] !== inner || a.dtype === "i32") {
    throw new Error(
      `${op}: "${a.name}" must be a float (S, ${inner}) matrix for NF4 weight "${w.name}" ` +
        `[${w.rows}, ${w.cols}], got ${a.dtype} [${a.shape.join(", ")}]`,
    );
  }
  const S = a.shape[0];
  if (opts.accumulate && !opts.out) {
    throw new Error(`${op}: accumulate needs an out tensor (${S}, ${outer}) to add into`);
  }
  if (opts.out) {
    const o = opts.out;
    if (o.shape.length !== 2 || o.shape[0] !== S || o.shape[1] !== outer || o.dtype !== a.dtype) {
      throw new Error(
        `${op}: out "${o.name}" must be ${a.dtype} [${S}, ${outer}], got ${o.dtype} [${
          o.shape.join(", ")
        }]`,
      );
    }
    if (o.id === a.id) throw new Error(`${op}: out "${o.name}" must not alias the input`);
  }
  const out = opts.out ??
    dev.tensor([S, outer], {
      tag: opts.tag ?? "activations",
      name: opts.name ?? op,
      dtype: a.dtype,
    });
  if (S === 0) return out;
  const workgroups = [ceilDiv(outer, WORKGROUP), ceilDiv(S, ROWS_PER_INVOCATION)] as const;
  if (workgroups[1] > dev.limits.maxComputeWorkgroupsPerDimension) {
    throw new Error(
      `${op}: S = ${S} rows need ${workgroups[1]} workgroups along y, above the device's ` +
        `${dev.limits.maxComputeWorkgroupsPerDimension}; split the rows into chunks`,
    );
  }
  const params = new Params().u32(S).u32(w.rows).u32(w.cols).u32(opts.accumulate ? 1 : 0);
  const dx = kernel === "nf4_matmul_dx";
  if (nf4StagesInput(dev, a, opts.staging) && (!dx || w.cols % 4 === 0)) {
    withStagedTextures(
      dev,
      [[a, dx ? "nf4.dy.texture" : "nf4.x.texture"]],
      (textures) =>
        dev.dispatch({
          kernel: dx ? "nf4_matmul_dx_tex" : "nf4_matmul_tex",
          bindings: [w.codes, w.absmax, w.quantState, out],
          textures,
          params,
          // the dx texture kernel computes 4 columns per invocation
          workgroups: dx ? [ceilDiv(outer, 4 * WORKGROUP), workgroups[1]] : workgroups,
        }),
    );
    return out;
  }
  dev.dispatch({
    kernel,
    bindings: [a, w.codes, w.absmax, w.quantState, out],
    params,
    workgroups,
  });
  return out;
}

/**
 * Y (S, N) = X (S, K) · dequant(W)ᵀ for an NF4 weight W (N, K): the forward of a frozen
 * linear layer. `x` is f32 or f16; Y has its dtype; accumulation is f32.
 */
export function nf4Linear(
  dev: Device,
  x: Tensor,
  w: Nf4Weight,
  opts: Nf4MatmulOptions = {},
): Tensor {
  return run(dev, "nf4_matmul", x, w, w.cols, w.rows, opts);
}

/**
 * dX (S, K) = dY (S, N) · dequant(W) for an NF4 weight W (N, K): the input gradient of a
 * frozen linear layer (pass `out` and `accumulate` to add into an existing gradient).
 */
export function nf4LinearInputGrad(
  dev: Device,
  dy: Tensor,
  w: Nf4Weight,
  opts: Nf4MatmulOptions = {},
): Tensor {
  return run(dev, "nf4_matmul_dx", dy, w, w.rows, w.cols, opts);
}
