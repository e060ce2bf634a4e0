/**
 * Element types.
 *
 * Kernels accumulate in f32 (WebGPU has no bf16). Tensors are stored as f32, f16 (half
 * precision, on devices with `shader-f16`) or i32 (token ids). A device's float setting
 * ({@link FloatCounting}) decides the storage of float tensors created without an explicit
 * dtype:
 *
 * - `"f32"`: every float tensor is f32;
 * - `"f16"`: mixed precision, on WebGPU and the meta device alike: float tensors are f16
 *   unless created as f32 (master weights, AdamW moments, norms' rstd, attention's lse, loss
 *   statistics; see docs/architecture.md), and are counted at their real size;
 * - `"bf16"` (meta device only): f32 tensors are *counted* as 2 bytes — a pure-bf16 plan of
 *   the paper's setups; the code path stays the f32 one.
 */

/** The element type a tensor is stored in. */
export type DType = "f32" | "f16" | "i32";

/** How a device stores float tensors (see the module doc): f32, mixed f16, or bf16 counting. */
export type FloatCounting = "f32" | "f16" | "bf16";

/** Bytes of one element for a tensor of `dtype` on a device whose floats are `floats`. */
export function bytesPerElement(dtype: DType, floats: FloatCounting = "f32"): number {
  if (dtype === "i32") return 4;
  if (dtype === "f16") return 2;
  return floats === "bf16" ? 2 : 4;
}

/** The storage type of a float tensor created without a dtype on a device with `floats`. */
export function floatStorage(floats: FloatCounting): "f32" | "f16" {
  return floats === "f16" ? "f16" : "f32";
}

/** Number of elements of a shape; rejects negative or fractional dimensions. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(
        `invalid shape [${shape.join(", ")}]: every dimension must be a non-negative integer`,
      );
    }
    n *= d;
  }
  return n;
}

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Parses a byte size with its unit: `80GiB` (binary: KiB, MiB, GiB, TiB = 2^10…2^40), `80GB`
 * (decimal: KB, MB, GB, TB = 10^3…10^12), `4096B` or `1e9B`. A number without a unit is
 * refused: "80" is far more likely to mean 80 GB or 80 GiB than 80 bytes.
 */
export function parseBytes(text: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[+]?[0-9]+)?)\s*([a-z]+)?\s*$/i.exec(text);
  if (!m) {
    const neg = /^\s*-/.test(text) ? " (a size cannot be negative)" : "";
    throw new Error(
      `cannot read "${text}" as a byte size${neg}: write a number and a unit, e.g. 80GiB ` +
        `(2^30 bytes each), 80GB (10^9 bytes each), 512MiB or 4096B`,
    );
  }
  if (m[2] === undefined) {
    throw new Error(
      `"${text}" has no unit: write ${m[1]}GiB (${m[1]} × 2^30 bytes) or ${m[1]}GB ` +
        `(${m[1]} × 10^9 bytes), or ${m[1]}B if you mean bytes`,
    );
  }
  const unit = BYTE_UNITS[m[2].toLowerCase()];
  if (unit === undefined) {
    throw new Error(
      `"${text}": unknown unit "${m[2]}"; use B, KB, MB, GB, TB (powers of 10) or KiB, MiB, GiB, ` +
        `TiB (powers of 2)`,
    );
  }
  return Math.floor(Number(m[1]) * unit);
}

/**
 * What a byte size was understood as, in both unit systems: `"80 GB = 74.51 GiB"`,
 * `"80 GiB = 85.9 GB"` (for the output of a command given `--budget`).
 */
export function describeBytes(text: string): string {
  const bytes = parseBytes(text);
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[+]?[0-9]+)?)\s*([a-z]+)\s*$/i.exec(text)!;
  const given = `${m[1]} ${
    m[2].replace(/^(k|m|g|t)(i?)b$/i, (_, p, i) => `${p.toUpperCase()}${i.toLowerCase()}B`)
  }`;
  const decimal = bytes >= 1e12
    ? `${+(bytes / 1e12).toFixed(2)} TB`
    : bytes >= 1e9
    ? `${+(bytes / 1e9).toFixed(2)} GB`
    : bytes >= 1e6
    ? `${+(bytes / 1e6).toFixed(2)} MB`
    : `${bytes} B`;
  const binary = formatBytes(bytes);
  const other = /i/i.test(m[2]) ? decimal : binary;
  return `${given} = ${other} (${bytes} bytes)`;
}

/** Formats bytes for people: `1.50 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(2)} ${units[u]}`;
}
