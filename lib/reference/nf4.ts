/**
 * NF4 (4-bit NormalFloat) storage with double-quantised absmax: bitsandbytes' scheme, in plain
 * TypeScript, as the reference the WGSL kernels and the `quantize` command are checked against.
 *
 * Source followed (bitsandbytes-foundation/bitsandbytes, commit 95f9af3, 2026-08-19):
 * - `bitsandbytes/functional.py`: `get_4bit_type("nf4")` (the 16 code values, also
 *   `nf4_dequantization_lut` in `csrc/kernels.cu`), `create_dynamic_map()` (the signed 8-bit
 *   dynamic map), `quantize_4bit(…, compress_statistics=True, quant_type="nf4")`
 *   (blocksize 64; `offset = absmax.mean()`; `quantize_blockwise(absmax - offset,
 *   blocksize=256)`), `dequantize_4bit` and `dequantize_blockwise` (`absmax = code[q]·absmax2
 *   + offset`);
 * - `bitsandbytes/backends/default/ops.py`, the pure-PyTorch kernels: blocks run over the
 *   *flattened* tensor (a block may straddle rows; the last block may be short and has its own
 *   absmax); `scaled = clamp(a · (1 / max(absmax, 1e-38)), -1, 1)` in f32 (in the short last
 *   block, `a / max(absmax, 1e-38)`, and that clamped absmax is the one stored); the nearest code is
 *   `bucketize(scaled, midpoints)` with f32 midpoints `(code[i] + code[i+1]) / 2` (a value on a
 *   midpoint takes the lower code, like the CUDA kernel's `x > t` tree); two codes per byte,
 *   the even element in the high nibble; an odd element count is padded with code 7 (0.0).
 *
 * Arithmetic is done in f32 exactly where bitsandbytes does it (`Math.fround` after every f32
 * operation), so codes match its; dequantised values are the f32 values its dequantisation
 * yields, returned as f64. Two constants depend on torch's CPU kernels in their last bit, the
 * dynamic map (`linspace`) and the absmax mean (`sum`): both are emulated as torch runs them on
 * an AVX2 CPU ({@link dynamicMap}, {@link torchSumF32}), and the whole quantisation is checked
 * byte for byte against bitsandbytes' own code run in torch (tests/nf4_reference_test.ts).
 * bitsandbytes on CUDA sums the absmax on the GPU, in another order, so its offset may differ
 * in the last bit; a file stores its offset and maps, and dequantisation uses the stored ones.
 */

/**
 * The 16 NF4 values, `get_4bit_type("nf4")` of bitsandbytes (`functional.py`; equal to
 * `nf4_dequantization_lut` in `csrc/kernels.cu`): quantiles of N(0, 1) normalised to [-1, 1],
 * generated there by `create_normal_map(offset=0.9677083, use_extra_value=True)`. Each literal
 * is an f32 value (printed by Python at f64 precision), so `Math.fround` leaves it unchanged.
 */
export const NF4_CODE: readonly number[] = Object.freeze([
  -1.0,
  -0.6961928009986877,
  -0.5250730514526367,
  -0.39491748809814453,
  -0.28444138169288635,
  -0.18477343022823334,
  -0.09105003625154495,
  0.0,
  0.07958029955625534,
  0.16093020141124725,
  0.24611230194568634,
  0.33791524171829224,
  0.44070982933044434,
  0.5626170039176941,
  0.7229568362236023,
  1.0,
]);

/** Elements per NF4 block (one absmax each): bitsandbytes' default `blocksize=64`. */
export const NF4_BLOCK = 64;

/** Absmax values per second-level block (one f32 constant each): `quantize_blockwise(…, 256)`. */
export const ABSMAX_BLOCK = 256;

/** f32 table entries a quantised weight keeps beside its data: 16 NF4 + 256 dynamic + offset. */
export const NF4_TABLE_FLOATS = 16 + 256 + 1;

/**
 * bitsandbytes' `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`: 256
 * sorted f32 values in [-1, 1]. For exponent i = 0..6 it takes the 2^i midpoints of
 * `torch.linspace(0.1, 1, 2^i + 1)` (f32) scaled by 10^(i-6), with both signs; then 0 and 1.0.
 *
 * bitsandbytes builds the map on the CPU with torch, so its last bits are those of torch's CPU
 * `linspace` kernel (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp), emulated here as it
 * runs with AVX2 (8-lane vectors): step = (end - start)/(steps - 1); the first half of the
 * points are `start + step·i`, the second `end - step·(steps-1-i)`, each one fused
 * multiply-add (GCC contracts them); the vectorised loop, over pairs of 8-lane vectors, takes
 * one such base per vector and adds `j·step` for lanes j = 1..7 (not fused); leftover points
 * are scalar. Checked equal, all 256 values, to torch 1.13 (Debian's python3-torch, AVX2) in
 * tests/nf4_reference_test.ts; the plain scalar formula differs in the last bit of 7 points.
 */
export function dynamicMap(): Float32Array {
  const f = Math.fround;
  const data: number[] = [];
  const maxExp = 7;
  for (let i = 0; i < maxExp; i++) {
    const b = torchLinspace(0.1, 1, 2 ** i + 1);
    const scale = f(10 ** (-(maxExp - 1) + i));
    for (let j = 0; j + 1 < b.length; j++) {
      const mean = f(f(b[j] + b[j + 1]) / 2);
      data.push(f(scale * mean), f(-scale * mean));
    }
  }
  data.push(0, 1);
  if (data.length !== 256) throw new Error(`dynamic map has ${data.length} values, expected 256`);
  return Float32Array.from(data.sort((a, b) => a - b));
}

/** torch's f32 CPU `linspace` (AVX2), as described at {@link dynamicMap}. */
function torchLinspace(start0: number, end0: number, steps: number): Float32Array {
  const f = Math.fround;
  const start = f(start0);
  const end = f(end0);
  const step = f((end - start) / (steps - 1));
  const half = Math.floor(steps / 2);
  // One f32 fused multiply-add: the f64 product of two f32 values is exact.
  const point = (i: number) => i < half ? f(start + step * i) : f(end - step * (steps - i - 1));
  const out = new Float32Array(steps);
  const V = 8;
  let i = 0;
  for (; i <= steps - 2 * V; i += 2 * V) {
    for (const v of [i, i + V]) {
      const base = point(v);
      out[v] = base;
      for (let j = 1; j < V; j++) out[v + j] = f(base + f(j * step));
    }
  }
  for (; i < steps; i++) out[i] = point(i);
  return out;
}

/**
 * torch's f32 CPU `sum` of a contiguous 1-D tensor (aten/src/ATen/native/cpu/SumKernel.cpp,
 * `cascade_sum` → `vectorized_inner_sum` → `row_sum` → `multi_row_sum`, AVX2 8-lane vectors,
 * f32 accumulators, 4 vectors interleaved, 4 cascade levels), so `absmax.mean()` (sum, then
 * divide) gets torch's last bit. Checked against torch 1.13 in tests/nf4_reference_test.ts.
 */
export function torchSumF32(x: ArrayLike<number>): number {
  const f = Math.fround;
  const V = 8;
  const ILP = 4;
  const LEVELS = 4;
  const n = x.length;
  const vecs = Math.floor(n / V);
  const add = (acc: Float32Array, k: number, vec: number) => {
    for (let l = 0; l < V; l++) acc[k * V + l] = f(acc[k * V + l] + x[vec * V + l]);
  };
  // multi_row_sum over rows of ILP vectors.
  const rows = Math.floor(vecs / ILP);
  const levelPower = Math.max(4, Math.floor(ceilLog2(rows) / LEVELS));
  const levelStep = 2 ** levelPower;
  const levelMask = levelStep - 1;
  const acc = Array.from({ length: LEVELS }, () => new Float32Array(ILP * V));
  let r = 0;
  while (r + levelStep <= rows) {
    for (let j = 0; j < levelStep; j++, r++) {
      for (let k = 0; k < ILP; k++) add(acc[0], k, r * ILP + k);
    }
    for (let j = 1; j < LEVELS; j++) {
      for (let e = 0; e < ILP * V; e++) {
        acc[j][e] = f(acc[j][e] + acc[j - 1][e]);
        acc[j - 1][e] = 0;
      }
      if ((r & (levelMask * 2 ** (j * levelPower))) !== 0) break;
    }
  }
  for (; r < rows; r++) for (let k = 0; k < ILP; k++) add(acc[0], k, r * ILP + k);
  for (let j = 1; j < LEVELS; j++) {
    for (let e = 0; e < ILP * V; e++) acc[0][e] = f(acc[0][e] + acc[j][e]);
  }
  // row_sum: leftover vectors into partial 0, then partials 1..3 into it.
  const p = acc[0];
  for (let v = rows * ILP; v < vecs; v++) add(p, 0, v);
  for (let k = 1; k < ILP; k++) {
    for (let l = 0; l < V; l++) p[l] = f(p[l] + p[k * V + l]);
  }
  // vectorized_inner_sum: scalar tail first, then the 8 lanes in order.
  let total = 0;
  for (let i = vecs * V; i < n; i++) total = f(total + x[i]);
  for (let l = 0; l < V; l++) total = f(total + p[l]);
  return total;
}

/** ⌈log2 n⌉ (0 for n ≤ 1), as c10's `CeilLog2`. */
function ceilLog2(n: number): number {
  let c = 0;
  while (2 ** c < n) c++;
  return c;
}

/** `1e-38` in f32: the floor of an absmax in bitsandbytes' default kernels. */
const TINY = Math.fround(1e-38);

/** f32 midpoints between consecutive sorted codes, as bitsandbytes' default backend forms them. */
function midpoints(code: ArrayLike<number>): Float32Array {
  const m = new Float32Array(code.length - 1);
  for (let i = 0; i + 1 < code.length; i++) m[i] = Math.fround(code[i] + code[i + 1]) / 2;
  return m;
}

/** torch.bucketize(x, bounds, right=False): the first i with x <= bounds[i] (else length). */
function bucketize(x: number, bounds: Float32Array): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x <= bounds[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Blockwise absmax quantisation onto a sorted code (bitsandbytes' `quantize_blockwise` /
 * `quantize_4bit` default kernels): per block of `blocksize` consecutive values the f32
 * absmax, and per value the index of the nearest code to `a · (1/absmax)` clamped to [-1, 1].
 */
function quantizeBlockwise(
  values: ArrayLike<number>,
  code: ArrayLike<number>,
  blocksize: number,
): { codes: Uint8Array; absmax: Float32Array } {
  const f = Math.fround;
  const n = values.length;
  const blocks = Math.ceil(n / blocksize);
  const bounds = midpoints(code);
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const lo = b * blocksize;
    const hi = Math.min(n, lo + blocksize);
    let m = 0;
    for (let i = lo; i < hi; i++) m = Math.max(m, Math.abs(f(values[i])));
    if (hi - lo === blocksize) {
      // A full block: absmax as found; values times the f32 reciprocal of max(absmax, 1e-38).
      absmax[b] = m;
      const inv = f(1 / Math.max(m, TINY));
      for (let i = lo; i < hi; i++) {
        codes[i] = bucketize(Math.min(1, Math.max(-1, f(f(values[i]) * inv))), bounds);
      }
    } else {
      // The short last block: the default backend stores max(absmax, 1e-38) and divides.
      const am = Math.max(m, TINY);
      absmax[b] = am;
      for (let i = lo; i < hi; i++) {
        codes[i] = bucketize(Math.min(1, Math.max(-1, f(f(values[i]) / am))), bounds);
      }
    }
  }
  return { codes, absmax };
}

/** A weight in NF4 with double-quantised absmax, laid out as bitsandbytes stores it. */
export interface Nf4Quantized {
  /** Shape of the original weight, e.g. (out_features, in_features). */
  shape: number[];
  /** Two 4-bit codes per byte, element 2j in the high nibble, 2j+1 in the low; ⌈n/2⌉ bytes. */
  packed: Uint8Array;
  /** 8-bit codes (into {@link Nf4Quantized.nestedMap}) of absmax − offset, one per 64 elements. */
  absmax: Uint8Array;
  /** f32 absmax of each 256 consecutive absmax − offset values (`nested_absmax`). */
  nestedAbsmax: Float32Array;
  /** The f32 mean of the block absmax values, subtracted before the 8-bit step (`nested_offset`). */
  offset: number;
  /** The 16 NF4 values (`quant_map`). */
  quantMap: Float32Array;
  /** The 256-value dynamic map (`nested_quant_map`). */
  nestedMap: Float32Array;
}

function checkShape(shape: readonly number[], n: number, what: string): void {
  const want = shape.reduce((a, b) => a * b, 1);
  if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d <= 0) || want !== n) {
    throw new Error(
      `${what}: shape [${shape.join(", ")}] must be positive integers whose product is the ` +
        `${n} values given`,
    );
  }
}

/**
 * Quantises `values` (row-major, of `shape`) as bitsandbytes'
 * `quantize_4bit(A, blocksize=64, compress_statistics=True, quant_type="nf4")`. Values must be
 * finite (a NaN or infinity has no nearest code).
 */
export function quantizeNf4(values: ArrayLike<number>, shape: readonly number[]): Nf4Quantized {
  const n = values.length;
  checkShape(shape, n, "quantizeNf4");
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(values[i])) {
      throw new Error(
        `quantizeNf4: element ${i} is ${values[i]}; NF4 needs finite weights (fix the checkpoint)`,
      );
    }
  }
  const { codes, absmax } = quantizeBlockwise(values, NF4_CODE, NF4_BLOCK);
  const packed = new Uint8Array(Math.ceil(n / 2));
  for (let j = 0; j < packed.length; j++) {
    const hi = codes[2 * j];
    const lo = 2 * j + 1 < n ? codes[2 * j + 1] : 7; // pad: bucketize(0) = code 7 (0.0)
    packed[j] = (hi << 4) | lo;
  }
  // offset = absmax.mean(): torch's f32 sum, divided in f32.
  const offset = Math.fround(torchSumF32(absmax) / absmax.length);
  const centred = new Float32Array(absmax.length);
  for (let b = 0; b < absmax.length; b++) centred[b] = absmax[b] - offset;
  const nestedMap = dynamicMap();
  const nested = quantizeBlockwise(centred, nestedMap, ABSMAX_BLOCK);
  return {
    shape: [...shape],
    packed,
    absmax: nested.codes,
    nestedAbsmax: nested.absmax,
    offset,
    quantMap: Float32Array.from(NF4_CODE),
    nestedMap,
  };
}

/**
 * The per-block absmax values a dequantisation uses (bitsandbytes' `dequantize_blockwise`
 * plus the offset, in f32): `fround(fround(nestedMap[q_b] · nestedAbsmax[b / 256]) + offset)`.
 */
export function nf4BlockScales(q: Nf4Quantized): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(q.absmax.length);
  for (let b = 0; b < out.length; b++) {
    out[b] = f(
      f(q.nestedMap[q.absmax[b]] * q.nestedAbsmax[Math.floor(b / ABSMAX_BLOCK)]) +
        q.offset,
    );
  }
  return out;
}

/** The 4-bit code of element `i` (high nibble for even i). */
export function nf4CodeAt(packed: Uint8Array, i: number): number {
  const byte = packed[i >> 1];
  return (i & 1) === 0 ? byte >> 4 : byte & 15;
}

/**
 * The dequantised weight, row-major: element i is `fround(quantMap[code_i] · scale[i / 64])`,
 * the f32 value bitsandbytes' `dequantize_4bit` yields, held in an f64 array.
 */
export function dequantizeNf4(q: Nf4Quantized): Float64Array {
  const n = q.shape.reduce((a, b) => a * b, 1);
  if (q.packed.length !== Math.ceil(n / 2) || q.absmax.length !== Math.ceil(n / NF4_BLOCK)) {
    throw new Error(
      `dequantizeNf4: shape [${q.shape.join(", ")}] needs ${Math.ceil(n / 2)} packed bytes and ` +
        `${Math.ceil(n / NF4_BLOCK)} absmax codes, got ${q.packed.length} and ${q.absmax.length}`,
    );
  }
  const scales = nf4BlockScales(q);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Math.fround(q.quantMap[nf4CodeAt(q.packed, i)] * scales[Math.floor(i / NF4_BLOCK)]);
  }
  return out;
}

/** The byte counts of one NF4 weight (see {@link nf4Bytes}). */
export interface Nf4ByteCount {
  /** ⌈n/2⌉: two 4-bit codes per byte. */
  codes: number;
  /** ⌈n/64⌉: one 8-bit absmax code per block of 64. */
  absmax: number;
  /** 4·⌈⌈n/64⌉/256⌉: one f32 constant per 256 blocks. */
  nestedAbsmax: number;
  /** 4: the f32 offset. */
  offset: number;
  /** Sum of the above: the data of the weight. */
  total: number;
  /** 8·total / n. */
  bitsPerParameter: number;
}

/**
 * Exact bytes of an NF4 weight of `rows × cols` = n elements, double-quantised as bitsandbytes:
 *
 *   bytes(n) = ⌈n/2⌉ + ⌈n/64⌉ + 4·⌈⌈n/64⌉/256⌉ + 4
 *
 * → 4 + 8/64 + 32/(64·256) = 4.126953… bits per parameter for large n. The code tables
 * (16 + 256 f32, 1088 bytes) are constants that bitsandbytes keeps once per weight
 * (`quant_map`, `nested_quant_map`) and are not part of this count; the device copy adds them
 * (see `lib/ops/nf4_matmul.ts`).
 */
export function nf4Bytes(rows: number, cols: number): Nf4ByteCount {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows <= 0 || cols <= 0) {
    throw new Error(`nf4Bytes: rows and cols must be positive integers, got ${rows} × ${cols}`);
  }
  const n = rows * cols;
  const blocks = Math.ceil(n / NF4_BLOCK);
  const codes = Math.ceil(n / 2);
  const nestedAbsmax = 4 * Math.ceil(blocks / ABSMAX_BLOCK);
  const total = codes + blocks + nestedAbsmax + 4;
  return {
    codes,
    absmax: blocks,
    nestedAbsmax,
    offset: 4,
    total,
    bitsPerParameter: (8 * total) / n,
  };
}
