/**
 * Loading WGSL kernels from `kernels/*.wgsl` and specializing them.
 *
 * Code shared by several kernels lives once in a snippet, `kernels/include/<name>.wgsl`, which a
 * kernel pulls in with a line `#include "<name>"` (see {@link kernelSource}).
 *
 * Kernels are specialized with WGSL `override` constants (passed per dispatch) or, where a
 * value must appear in a type or a workgroup-size expression WGSL cannot override, with
 * `{{NAME}}` placeholders filled by {@link fillTemplate}, which fails on a leftover one.
 */

import { IndexRangeError } from "./errors.ts";
import { contentKey } from "./params_cache.ts";

/** Where snippets live under `kernels/`, and the prefix of their names in the texts. */
export const KERNEL_INCLUDE_DIR = "include";

/** Raw texts by name relative to `kernels/` (`adamw`, `include/nf4_decode`). */
const texts = new Map<string, string>();
/** Kernel texts with their includes resolved. */
const resolved = new Map<string, string>();

/**
 * Supplies kernel and snippet texts without a file system (the web page's bundle carries every
 * `kernels/*.wgsl` and `kernels/include/*.wgsl` and registers them here before the first
 * dispatch); {@link kernelSource} then serves them instead of reading the files. Names are the
 * file paths under `kernels/` without `.wgsl`: `adamw` for a kernel, `include/nf4_decode` for a
 * snippet (see {@link isKernelInclude}).
 */
export function registerKernelSources(sources: Readonly<Record<string, string>>): void {
  for (const [name, src] of Object.entries(sources)) texts.set(name, src);
  resolved.clear();
}

/** Whether a name passed to {@link registerKernelSources} is a snippet rather than a kernel. */
export function isKernelInclude(name: string): boolean {
  return name.startsWith(`${KERNEL_INCLUDE_DIR}/`);
}

/** The raw text of `kernels/<path>.wgsl` (registered, or read from the file system). */
function rawText(path: string, what: () => string): string {
  let src = texts.get(path);
  if (src !== undefined) return src;
  if (typeof Deno === "undefined") {
    throw new Error(
      `${what()} was not registered: without a file system (a browser), pass every ` +
        `kernels/<name>.wgsl and kernels/${KERNEL_INCLUDE_DIR}/<name>.wgsl text to ` +
        `registerKernelSources (snippets as "${KERNEL_INCLUDE_DIR}/<name>") before the first ` +
        `dispatch`,
    );
  }
  const url = new URL(`../../kernels/${path}.wgsl`, import.meta.url);
  try {
    src = Deno.readTextFileSync(url);
  } catch (e) {
    throw new Error(
      `cannot read ${what()} from ${url.pathname}: ${(e as Error).message}. Kernels live in ` +
        `kernels/<name>.wgsl next to lib/, the snippets they include in ` +
        `kernels/${KERNEL_INCLUDE_DIR}/<name>.wgsl.`,
    );
  }
  texts.set(path, src);
  return src;
}

/** A line that asks for a snippet: `#include "name"`. */
const INCLUDE_LINE = /^[ \t]*#include\b(.*)$/gm;
const INCLUDE_ARG = /^[ \t]+"([A-Za-z0-9_]+)"[ \t\r]*$/;

/**
 * `src` (the text of `kernel`, or of the last snippet of `chain`, the snippets being resolved)
 * with every `#include "name"` line replaced by the text of `kernels/include/name.wgsl`, itself
 * resolved. A snippet already pulled into this kernel (`done`) is skipped, so two snippets may
 * include a third; one that includes itself, directly or through others, is an error.
 */
function resolveIncludes(kernel: string, src: string, chain: string[], done: Set<string>): string {
  return src.replace(INCLUDE_LINE, (line: string, rest: string) => {
    const arg = INCLUDE_ARG.exec(rest);
    const where = chain.length > 0
      ? `snippet "${chain[chain.length - 1]}" (included by kernel "${kernel}")`
      : `kernel "${kernel}"`;
    if (!arg) {
      throw new Error(
        `${where}: malformed include line "${line.trim()}"; write #include "name" (letters, ` +
          `digits, _) on a line of its own for kernels/${KERNEL_INCLUDE_DIR}/name.wgsl`,
      );
    }
    const name = arg[1];
    if (chain.includes(name)) {
      const cycle = [...chain.slice(chain.indexOf(name)), name].map((n) => `"${n}"`);
      throw new Error(
        `kernel "${kernel}": include cycle ${cycle.join(" → ")}; a snippet must not include ` +
          `itself, directly or through other snippets`,
      );
    }
    if (done.has(name)) return "";
    const text = rawText(
      `${KERNEL_INCLUDE_DIR}/${name}`,
      () => `snippet "${name}" (kernels/${KERNEL_INCLUDE_DIR}/${name}.wgsl, included by ${where})`,
    );
    const body = resolveIncludes(kernel, text, [...chain, name], done);
    done.add(name);
    return body.endsWith("\n") ? body.slice(0, -1) : body;
  });
}

/**
 * The text of `kernels/<name>.wgsl` with its includes resolved: each line `#include "snip"`
 * is replaced by the text of `kernels/include/snip.wgsl` (whose own includes are resolved
 * likewise; a snippet is pulled in once per kernel). A missing snippet, a malformed include
 * line or an include cycle throws an error naming the kernel and the snippet.
 */
export function kernelSource(name: string): string {
  let src = resolved.get(name);
  if (src === undefined) {
    const text = rawText(name, () => `kernel "${name}"`);
    src = resolveIncludes(name, text, [], new Set());
    resolved.set(name, src);
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
 * The declaration that makes a kernel dtype-generic. Its float tensors that may be half are
 * declared `array<SF>` / `array<vec4<SF>>`; loads widen with `f32(…)` / `vec4<f32>(…)` (a no-op
 * in f32) and stores narrow with `SF(…)` / `vec4<SF>(…)`, so arithmetic is always f32. Bindings
 * declared `array<f32>` stay f32 in every variant (e.g. rstd, lse, loss statistics).
 */
export const STORAGE_ALIAS = "alias SF = f32;";

/** How our kernels declare their parameter block (the one uniform each may have). */
export const PARAMS_UNIFORM = "var<uniform> p: Params;";

/**
 * A kernel with its parameter block bound as a read-only storage buffer instead of a uniform
 * buffer: the declaration {@link PARAMS_UNIFORM} becomes a storage binding `p_storage`, copied
 * into a private `p` at the top of each entry point, so the body reads `p` as before. The copy
 * matters on lavapipe: a storage load is a per-lane loop with a bounds check, and a kernel that
 * writes storage could not keep `p.N` in a register across its stores. A source without the
 * declaration is returned as it is.
 *
 * Why (lavapipe, Mesa 22.3): lavapipe "inlines" uniform-buffer values that steer loops and
 * branches: it compiles a specialised copy of the shader for each new set of such values it
 * meets (NIR clone + an LLVM module, several MiB of host memory each, never freed while the
 * pipeline lives). Our parameter blocks carry row counts, so MsT's chunk sizes and every new S
 * made the driver compile more copies of the texture matmul: 23 LLVM modules for 19 pipelines
 * at S=1024, 35 at S=4096. The driver never inlines storage-buffer values, so with this variant
 * it compiles exactly one shader per pipeline, and its memory no longer grows with S
 * (docs/architecture.md, "Parameter blocks and lavapipe's uniform inlining").
 */
export function paramsInStorageSource(source: string): string {
  if (!source.includes(PARAMS_UNIFORM)) return source;
  return source
    .replace(PARAMS_UNIFORM, "var<storage, read> p_storage: Params;\nvar<private> p: Params;")
    .replace(/(@compute[^{]*\{)/g, "$1\n  p = p_storage;");
}

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
 * f32 tensors, `i32` ones i32, `u32` ones i32 (packed words, e.g. NF4 codes: the bits are the
 * same), every `SF` binding and staged texture one float type.
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
    else if (d.elem === "u32" && t.dtype !== "i32") {
      throw new Error(
        `kernel "${kernel}": binding ${i} (${d.name}) is declared array<u32> (packed 32-bit ` +
          `words), but "${t.name}" is ${t.dtype}; bind an i32 tensor holding the words`,
      );
    } else if ((d.elem === "f32" || d.elem === "i32") && t.dtype !== d.elem) {
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
      throw new IndexRangeError("u32", v);
    }
    this.#words.push(v);
    return this;
  }
  /** Append a signed 32-bit integer. */
  i32(v: number): this {
    this.#open();
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
      throw new IndexRangeError("i32", v);
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
