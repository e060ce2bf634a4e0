/**
 * Loading WGSL kernels from `kernels/*.wgsl` and specializing them.
 *
 * Kernels are specialized with WGSL `override` constants (passed per dispatch) or, where a
 * value must appear in a type or a workgroup-size expression WGSL cannot override, with
 * `{{NAME}}` placeholders filled by {@link fillTemplate}, which fails on a leftover one.
 */

import { IndexRangeError } from "./errors.ts";

const cache = new Map<string, string>();

/** The text of `kernels/<name>.wgsl`. */
export function kernelSource(name: string): string {
  let src = cache.get(name);
  if (src === undefined) {
    const url = new URL(`../../kernels/${name}.wgsl`, import.meta.url);
    try {
      src = Deno.readTextFileSync(url);
    } catch (e) {
      throw new Error(
        `cannot read kernel "${name}" from ${url.pathname}: ${(e as Error).message}. ` +
          `Kernels live in kernels/<name>.wgsl next to lib/.`,
      );
    }
    cache.set(name, src);
  }
  return src;
}

/** Replaces every `{{NAME}}` in `source`; throws if one is left unfilled or unused. */
export function fillTemplate(source: string, values: Record<string, string | number>): string {
  const used = new Set<string>();
  const out = source.replace(/\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}/g, (_m, key: string) => {
    if (!(key in values)) {
      throw new Error(
        `kernel template placeholder {{${key}}} has no value; pass it among: ${
          Object.keys(values).join(", ") || "(none given)"
        }`,
      );
    }
    used.add(key);
    return String(values[key]);
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length > 0) {
    throw new Error(`kernel template values not used by the source: ${unused.join(", ")}`);
  }
  return out;
}

/**
 * Uniform parameters of one dispatch, bound at `@group(1) @binding(0)`.
 * Append fields in the order of the WGSL struct; every field here is 4 bytes.
 */
export class Params {
  #values: { type: "u32" | "i32" | "f32"; v: number }[] = [];
  /** Append an unsigned 32-bit integer. */
  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new IndexRangeError("u32", v);
    }
    this.#values.push({ type: "u32", v });
    return this;
  }
  /** Append a signed 32-bit integer. */
  i32(v: number): this {
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
      throw new IndexRangeError("i32", v);
    }
    this.#values.push({ type: "i32", v });
    return this;
  }
  /** Append a 32-bit float. */
  f32(v: number): this {
    this.#values.push({ type: "f32", v });
    return this;
  }
  /** The bytes, padded to a multiple of 16. */
  bytes(): ArrayBuffer {
    const n = Math.max(4, Math.ceil(this.#values.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const dv = new DataView(buf);
    this.#values.forEach(({ type, v }, i) => {
      if (type === "u32") dv.setUint32(i * 4, v, true);
      else if (type === "i32") dv.setInt32(i * 4, v, true);
      else dv.setFloat32(i * 4, v, true);
    });
    return buf;
  }
}
