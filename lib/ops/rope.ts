/** Rotary position embedding (Hugging Face Llama "rotate_half" convention). */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { fillTemplate, kernelSource, Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
import { ceilDiv, grid1d } from "./util.ts";

/** Position bits the kernel's angle table covers: positions must be below 2^24. */
const POSITION_BITS = 24;

/** Options of {@link rope}. */
export interface RopeOptions {
  /** Number of heads H packed in the rows of x. */
  heads: number;
  /** Head dimension hd (even). */
  headDim: number;
  /** Base θ of the frequencies θ^(−2i/hd). */
  theta: number;
  /** Position of row 0 (default 0). */
  positionOffset?: number;
  /** Rotate by −angle: the backward of the forward rotation. */
  inverse?: boolean;
  /**
   * Frequencies (hd/2) replacing θ^(−2i/hd), e.g. Llama 3's scaled ones; `theta` is then
   * unused.
   */
  invFreq?: ArrayLike<number>;
  /** Tag of the output (default `activations`). */
  tag?: Tag;
  /** Name of the output (default `rope`). */
  name?: string;
}

/** Fractional turns per position bit, by frequency table (computed once per table object: a
 * table passed as `invFreq` must not be changed afterwards). */
const turnsTables = new WeakMap<ArrayLike<number>, Float32Array>();
/** The default frequency tables, by `${hd}:${θ}`. */
const defaultFreqs = new Map<string, Float64Array>();
/** The filled rope kernel source, by N4. */
const ropeSources = new Map<number, string>();

/**
 * table[j·half + i] = frac(2^j · freq[i] / 2π) for position bit j < POSITION_BITS, rounded to
 * f32, padded with zeros to n4·4 entries: the turns of the angle each position bit adds.
 */
function turnsTable(freq: ArrayLike<number>, n4: number): Float32Array {
  let table = turnsTables.get(freq);
  if (!table) {
    const half = freq.length;
    table = new Float32Array(n4 * 4);
    for (let j = 0; j < POSITION_BITS; j++) {
      for (let i = 0; i < half; i++) {
        const turns = (2 ** j * freq[i]) / (2 * Math.PI);
        table[j * half + i] = Math.fround(turns - Math.floor(turns)) % 1;
      }
    }
    turnsTables.set(freq, table);
  }
  return table;
}

function ropeSource(n4: number): string {
  let src = ropeSources.get(n4);
  if (src === undefined) {
    src = fillTemplate(kernelSource("rope"), { N4: n4 });
    ropeSources.set(n4, src);
  }
  return src;
}

/** The inverse frequencies θ^(−2i/hd), i < hd/2, in f64. */
export function ropeInvFreq(headDim: number, theta: number): Float64Array {
  const f = new Float64Array(headDim / 2);
  for (let i = 0; i < f.length; i++) f[i] = Math.pow(theta, (-2 * i) / headDim);
  return f;
}

/** {@link ropeInvFreq}, one shared table per (hd, θ). */
function defaultInvFreq(headDim: number, theta: number): Float64Array {
  const key = `${headDim}:${theta}`;
  let f = defaultFreqs.get(key);
  if (!f) defaultFreqs.set(key, f = ropeInvFreq(headDim, theta));
  return f;
}

/**
 * out (S, H·hd) = x rotated per head: for i < hd/2 and angle a = (positionOffset + s)·θ^(−2i/hd),
 * out[i] = x[i]cos a − x[i+hd/2]sin a, out[i+hd/2] = x[i+hd/2]cos a + x[i]sin a.
 * With `inverse` the rotation is by −a (the backward). Angles are exact to ~1e-5 rad for
 * positions up to 2^24 (see kernels/rope.wgsl).
 */
export function rope(dev: Device, x: Tensor, opts: RopeOptions): Tensor {
  const { heads: H, headDim: hd } = opts;
  const offset = opts.positionOffset ?? 0;
  if (!Number.isInteger(hd) || hd <= 0 || hd % 2 !== 0) {
    throw new Error(`rope: headDim must be a positive even integer, got ${hd}`);
  }
  if (!Number.isInteger(H) || H <= 0) {
    throw new Error(`rope: heads must be a positive integer, got ${H}`);
  }
  if (x.shape.length !== 2 || x.shape[1] !== H * hd) {
    throw new Error(
      `rope: x: expected shape [S, ${H * hd}] (heads ${H} × headDim ${hd}), got [${
        x.shape.join(", ")
      }]`,
    );
  }
  const S = x.shape[0];
  if (!Number.isInteger(offset) || offset < 0 || offset + S > 2 ** POSITION_BITS) {
    throw new Error(
      `rope: positions ${offset}..${offset + S - 1} must lie in 0..${2 ** POSITION_BITS - 1}`,
    );
  }
  const half = hd / 2;
  const freq = opts.invFreq ?? defaultInvFreq(hd, opts.theta);
  if (freq.length !== half) {
    throw new Error(`rope: invFreq: expected ${half} frequencies, got ${freq.length}`);
  }
  const out = dev.tensor([S, H * hd], {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "rope",
  }); // (S, H·hd)
  const maxPos = offset + S - 1;
  const nbits = maxPos > 0 ? Math.floor(Math.log2(maxPos)) + 1 : 0;
  const [nx, ny] = grid1d(ceilDiv(S * half, 64));
  const params = new Params().u32(S).u32(H).u32(hd).u32(half).u32(offset).u32(nbits)
    .f32(opts.inverse ? -1 : 1).u32(nx);
  const n4 = ceilDiv(POSITION_BITS * half, 4);
  params.table(turnsTable(freq, n4));
  dev.dispatch({
    kernel: "rope",
    source: ropeSource(n4),
    bindings: [x, out],
    params,
    workgroups: [nx, ny],
  });
  return out;
}
