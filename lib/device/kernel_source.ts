/**
 * Loading WGSL kernels from `kernels/*.wgsl` and specializing them.
 *
 * Kernels are specialized with WGSL `override` constants (passed per dispatch) or, where a
 * value must appear in a type or a workgroup-size expression WGSL cannot override, with
 * `{{NAME}}` placeholders filled by {@link fillTemplate}, which fails on a leftover one.
 */

import { contentKey } from "./params_cache.ts";

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

const tableIds = new WeakMap<Float32Array, number>();
let nextTableId = 0;
function tableId(t: Float32Array): number {
  let id = tableIds.get(t);
  if (id === undefined) tableIds.set(t, id = nextTableId++);
  return id;
}

/**
 * Uniform parameters of one dispatch, bound at `@group(1) @binding(0)`.
 * Append fields in the order of the WGSL struct; every field here is 4 bytes.
 */
export class Params {
  // Each field as its 32-bit pattern (u32, i32 or f32 bits), so bytes() is one copy.
  #words: number[] = [];
  // A shared constant table appended after the words (see table()).
  #table: Float32Array | null = null;
  static readonly #f32 = new Float32Array(1);
  static readonly #bits = new Uint32Array(Params.#f32.buffer);
  #open(): void {
    if (this.#table) throw new Error("Params: the table must be the last field");
  }
  /** Append an unsigned 32-bit integer. */
  u32(v: number): this {
    this.#open();
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new Error(`u32 parameter out of range: ${v}`);
    }
    this.#words.push(v);
    return this;
  }
  /** Append a signed 32-bit integer. */
  i32(v: number): this {
    this.#open();
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
      throw new Error(`i32 parameter out of range: ${v}`);
    }
    this.#words.push(v >>> 0);
    return this;
  }
  /** Append a 32-bit float. */
  f32(v: number): this {
    this.#open();
    Params.#f32[0] = v;
    this.#words.push(Params.#bits[0]);
    return this;
  }
  /**
   * Append a constant table of f32s as the last field, starting at a 16-byte boundary (the
   * words before it are padded, as a WGSL `array<vec4<f32>, N>` member after scalars is). The
   * table is used by identity: a block is keyed by its words and the table object, so a table
   * must never be changed after it is first passed here (build it once and cache it).
   */
  table(values: Float32Array): this {
    if (this.#table) throw new Error("Params: table() may be called once, as the last field");
    this.#table = values;
    return this;
  }
  /** The bytes (little-endian, as WebGPU uploads them), padded to a multiple of 16. */
  bytes(): ArrayBuffer {
    const head = Math.ceil(this.#words.length / 4) * 4;
    const tail = this.#table ? Math.ceil(this.#table.length / 4) * 4 : 0;
    const words = new Uint32Array(Math.max(4, head + tail));
    words.set(this.#words);
    if (this.#table) new Float32Array(words.buffer, head * 4, this.#table.length).set(this.#table);
    return words.buffer;
  }
  /** A string equal for two blocks exactly when their bytes are equal (see table()). */
  contentKey(): string {
    const words = new Uint32Array(Math.ceil(this.#words.length / 4) * 4);
    words.set(this.#words);
    let key = contentKey(words);
    if (this.#table) key += `\u0002${tableId(this.#table)}`;
    return key;
  }
}
