/**
 * Loading WGSL kernels from `kernels/*.wgsl` and specializing them.
 *
 * Kernels are specialized with WGSL `override` constants (passed per dispatch) or, where a
 * value must appear in a type or a workgroup-size expression WGSL cannot override, with
 * `{{NAME}}` placeholders filled by {@link fillTemplate}, which fails on a leftover one.
 */

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
 * The declaration that makes a kernel dtype-generic. Its float tensors that may be half are
 * declared `array<SF>` / `array<vec4<SF>>`; loads widen with `f32(…)` / `vec4<f32>(…)` (a no-op
 * in f32) and stores narrow with `SF(…)` / `vec4<SF>(…)`, so arithmetic is always f32. Bindings
 * declared `array<f32>` stay f32 in every variant (e.g. rstd, lse, loss statistics).
 */
export const STORAGE_ALIAS = "alias SF = f32;";

/**
 * The f16 variant of a dtype-generic kernel: `enable f16;` on the first line (so compile
 * errors keep their line numbers) and `SF = f16`. Throws when the kernel is not generic.
 */
export function halfSource(kernel: string, source: string): string {
  if (!source.includes(STORAGE_ALIAS)) {
    throw new Error(
      `kernel "${kernel}" has no f16 variant (its WGSL lacks "${STORAGE_ALIAS}"), but f16 ` +
        `tensors are bound to it; make the kernel dtype-generic or pass f32 tensors`,
    );
  }
  return "enable f16; " + source.replace(STORAGE_ALIAS, "alias SF = f16;");
}

/** A tensor or texture bound to a kernel: name and element type. */
export interface BoundType {
  /** Name, for errors. */
  name: string;
  /** Element type. */
  dtype: "f32" | "f16" | "i32";
}

const declCache = new Map<string, Map<number, { name: string; elem: string }>>();

/** The `@group(0)` storage declarations of a WGSL source: binding → name and element type. */
function storageDecls(source: string): Map<number, { name: string; elem: string }> {
  let decls = declCache.get(source);
  if (decls === undefined) {
    decls = new Map();
    const re =
      /@group\(0\)\s*@binding\((\d+)\)\s*var<storage[^>]*>\s*(\w+)\s*:\s*array<\s*(?:vec[234]<\s*)?(\w+)/g;
    for (const m of source.matchAll(re)) decls.set(Number(m[1]), { name: m[2], elem: m[3] });
    if (declCache.size > 256) declCache.clear();
    declCache.set(source, decls);
  }
  return decls;
}

/**
 * Checks bound tensors against a kernel's declarations and returns the storage float of the
 * call (the dtype of its `SF` bindings and textures; f32 when it has none). `f32` bindings need
 * f32 tensors, `i32` ones i32, every `SF` binding and staged texture one float type.
 */
export function checkBindingTypes(
  kernel: string,
  source: string,
  bindings: readonly BoundType[],
  textures: readonly BoundType[],
): "f32" | "f16" {
  const decls = storageDecls(source);
  let storage: "f32" | "f16" | null = null;
  let first = "";
  const generic = source.includes(STORAGE_ALIAS);
  const floatOf = (t: BoundType, what: string) => {
    if (t.dtype === "i32") {
      throw new Error(`kernel "${kernel}": ${what} "${t.name}" is i32, but a float is declared`);
    }
    if (storage === null) [storage, first] = [t.dtype, t.name];
    else if (storage !== t.dtype) {
      throw new Error(
        `kernel "${kernel}": ${what} "${t.name}" is ${t.dtype}, but "${first}" is ${storage}; ` +
          `the kernel's storage floats (SF) must share one type — cast one operand first`,
      );
    }
  };
  bindings.forEach((t, i) => {
    const d = decls.get(i);
    if (!d) return;
    if (d.elem === "SF") floatOf(t, `binding ${i} (${d.name})`);
    else if ((d.elem === "f32" || d.elem === "i32") && t.dtype !== d.elem) {
      throw new Error(
        `kernel "${kernel}": binding ${i} (${d.name}) is declared array<${d.elem}>, but ` +
          `"${t.name}" is ${t.dtype}` +
          (t.dtype === "f16" && !generic
            ? `; the kernel has no f16 variant (its WGSL lacks "${STORAGE_ALIAS}")`
            : d.elem === "f32"
            ? `; create it with dtype "f32"`
            : ""),
      );
    }
  });
  for (const t of textures) floatOf(t, "texture");
  return storage ?? "f32";
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
      throw new Error(`u32 parameter out of range: ${v}`);
    }
    this.#values.push({ type: "u32", v });
    return this;
  }
  /** Append a signed 32-bit integer. */
  i32(v: number): this {
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
      throw new Error(`i32 parameter out of range: ${v}`);
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
