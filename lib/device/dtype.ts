/**
 * Element types.
 *
 * Real compute is f32 (WebGPU has no bf16) and token ids are i32. The meta device can
 * *count* floating tensors as f16 or bf16 so the paper's bf16 setups can be planned
 * honestly; that only changes byte counts, never the code path.
 */

/** The element type a tensor is created with. */
export type DType = "f32" | "i32";

/** How floating-point elements are counted: the real f32, or the meta device's f16/bf16. */
export type FloatCounting = "f32" | "f16" | "bf16";

/** Bytes of one element for a tensor of `dtype` when floats are counted as `floats`. */
export function bytesPerElement(dtype: DType, floats: FloatCounting = "f32"): number {
  if (dtype === "i32") return 4;
  return floats === "f32" ? 4 : 2;
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
