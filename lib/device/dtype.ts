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

/** Parses a byte count such as `80GiB`, `512MiB`, `1e9` or `4096`. */
export function parseBytes(text: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$/i.exec(text);
  if (!m) {
    throw new Error(
      `cannot read "${text}" as a byte count: write a number with an optional unit, e.g. 80GiB, 512MiB, 1e9`,
    );
  }
  const units: Record<string, number> = {
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
  return Math.floor(Number(m[1]) * units[(m[2] ?? "b").toLowerCase()]);
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
