/**
 * Memory-efficient causal attention (FlashAttention-style), forward and backward.
 *
 * Grouped-query: head h reads kv head ⌊h·KV/H⌋. Optional sliding window (key j visible to
 * query i iff i − window < j ≤ i) and logit soft-cap (s = scale·q·k → c·tanh(s/c), Gemma-2).
 * The forward saves only the output and the per-row log-sum-exp; the backward recomputes
 * the probabilities from q, k and lse. Memory is O(S·d): no S×S buffer is ever allocated.
 *
 * Kernels: `attention_fwd` (online softmax, one block of query rows per invocation),
 * `attention_bwd_dq` (dq and D = rowsum(dO∘O), parallel over query rows) and
 * `attention_bwd_dkdv` (dk, dv, parallel over key rows, looping over the query rows and the
 * query heads of its kv group), so every gradient row has exactly one writer.
 *
 * The operands each kernel re-reads per key (forward, dq: k and v) or per query (dk/dv: q and
 * dO) are staged as read-only textures (`dev.texture`, workspace, disposed right after the
 * dispatch): on lavapipe a textureLoad costs a fraction of a storage load, which made the
 * three kernels ~1.4–1.7× faster at S=1024–2048.
 */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { fillTemplate, kernelSource, Params } from "../device/kernel_source.ts";
import { expectShape, type Tensor } from "../device/tensor.ts";
import { canStageAsTexture } from "../device/texture.ts";
import { withStagedTextures } from "./staging.ts";
import { unrollLoops } from "./unroll.ts";
import { ceilDiv } from "./util.ts";

/** Options of {@link attentionForward} and {@link attentionBackward}. */
export interface AttentionOptions {
  /** Query heads H. */
  heads: number;
  /** Key/value heads KV (H must be a multiple of KV). */
  kvHeads: number;
  /** Head dimension hd (a multiple of 4). */
  headDim: number;
  /** Score scale, usually 1/√hd. */
  scale: number;
  /** Sliding window: key j visible to query i iff i − window < j ≤ i (0/undefined: none). */
  window?: number;
  /** Logit soft-cap c: scores s → c·tanh(s/c) before the softmax (0/undefined: none). */
  softcap?: number;
  /** Tag of the outputs (default "activations"). */
  tag?: Tag;
  /** Name prefix of the outputs (default "attn"). */
  name?: string;
  /**
   * Stage the streamed operands as textures when they fit (default true); false binds them
   * as storage buffers (slower on lavapipe, no texture workspace).
   */
  stage?: boolean;
}

/** Work per invocation and workgroup size; tuned for lavapipe (8-wide SIMD, 2 cores). */
interface Tiling {
  /** Rows (queries or keys) per invocation. */
  R: number;
  /** Keys per online-softmax chunk (forward). */
  C: number;
  /** Keys (dq) or query rows (dk/dv) per chunk in the backward. */
  B: number;
  /** Invocations per workgroup. */
  WG: number;
}

/**
 * Measured on lavapipe (S=1024, hd=16): the kernels are bound by per-key overhead, so big
 * row blocks win (R=4 → 32 halves the time); R·hd is capped at 512 to bound register tiles
 * and code size. A workgroup of 8 invocations is one SIMD pass. Chunks (S=8192): C=4 in the
 * forward; B=2 in the backward runs as fast as B=4 and compiles in half the time (B=8 is
 * slower in both).
 */
function tiling(dev: Device, hd: number, o: AttentionOptions): Tiling {
  // With a soft-cap (a tanh per score) LLVM took ~30× longer to compile R=32 than without.
  // SwiftShader (kernelTiles "small") did not compile R=32 in 2 minutes (GPU process past
  // 10 GB). Each row's work is the same at any R: bit for bit in the forward without a window;
  // a window's chunk starts and dk/dv's split follow the block, so those move by rounding.
  const maxR = dev.kernelTiles === "small" ? SMALL_R : (o.softcap ?? 0) > 0 ? 8 : 32;
  const R = Math.max(1, Math.min(maxR, Math.floor(512 / hd)));
  return { R, C: 4, B: 2, WG: 8 };
}

/** Rows per invocation on a device with small kernel tiles ({@link Device.kernelTiles}). */
export const SMALL_R = 4;

const sources = new Map<string, string>();

/** The kernel's source with its template filled and its `// @unroll` loops unrolled (cached). */
function kernel(name: string, values: Record<string, number | string>): string {
  const key = `${name}:${JSON.stringify(values)}`;
  let src = sources.get(key);
  if (src === undefined) {
    const bounds = Object.fromEntries(
      Object.entries(values).filter((e): e is [string, number] => typeof e[1] === "number"),
    );
    src = unrollLoops(fillTemplate(kernelSource(name), values), bounds);
    sources.set(key, src);
  }
  return src;
}

/**
 * The two operands a kernel streams (re-reads per key or per query row): staged as textures
 * when both fit (`{@link canStageAsTexture}`), else bound as storage buffers after the
 * kernel's other `bindings`. Returns the WGSL declaring them with `loadA(i)` / `loadB(i)`,
 * the extra bindings and the operands to stage around the dispatch ({@link withStagedTextures}).
 */
function streamed(
  a: Tensor,
  b: Tensor,
  firstBinding: number,
  name: string,
  stage: boolean,
): { wgsl: string; bindings: Tensor[]; staged: [Tensor, string][] } {
  if (stage && canStageAsTexture(a) && canStageAsTexture(b)) {
    const staged: [Tensor, string][] = [
      [a, `${name}.${a.name}.texture`],
      [b, `${name}.${b.name}.texture`],
    ];
    const wgsl = `@group(2) @binding(0) var a_tex: texture_2d<f32>;
@group(2) @binding(1) var b_tex: texture_2d<f32>;
fn loadA(i: u32) -> vec4<f32> { return textureLoad(a_tex, vec2<u32>(i & 1023u, i >> 10u), 0); }
fn loadB(i: u32) -> vec4<f32> { return textureLoad(b_tex, vec2<u32>(i & 1023u, i >> 10u), 0); }`;
    return { wgsl, bindings: [], staged };
  }
  const wgsl = `@group(0) @binding(${firstBinding}) var<storage, read> a_buf: array<vec4<SF>>;
@group(0) @binding(${firstBinding + 1}) var<storage, read> b_buf: array<vec4<SF>>;
fn loadA(i: u32) -> vec4<f32> { return vec4<f32>(a_buf[i]); }
fn loadB(i: u32) -> vec4<f32> { return vec4<f32>(b_buf[i]); }`;
  return { wgsl, bindings: [a, b], staged: [] };
}

function validate(
  op: string,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: AttentionOptions,
): { S: number; H: number; KV: number; hd: number; window: number; softcap: number } {
  const { heads: H, kvHeads: KV, headDim: hd } = o;
  for (const [name, x] of [["heads", H], ["kvHeads", KV], ["headDim", hd]] as const) {
    if (!Number.isInteger(x) || x <= 0) {
      throw new Error(`${op}: ${name} must be a positive integer, got ${x}`);
    }
  }
  if (H % KV !== 0) {
    throw new Error(`${op}: heads (${H}) must be a multiple of kvHeads (${KV})`);
  }
  if (hd % 4 !== 0) {
    throw new Error(`${op}: headDim must be a multiple of 4 (vec4 kernels), got ${hd}`);
  }
  if (!Number.isFinite(o.scale) || o.scale <= 0) {
    throw new Error(`${op}: scale must be a positive finite number, got ${o.scale}`);
  }
  const window = o.window ?? 0;
  if (!Number.isInteger(window) || window < 0) {
    throw new Error(`${op}: window must be a non-negative integer (0 = none), got ${window}`);
  }
  const softcap = o.softcap ?? 0;
  if (!Number.isFinite(softcap) || softcap < 0) {
    throw new Error(`${op}: softcap must be a non-negative number (0 = none), got ${softcap}`);
  }
  if (q.shape.length !== 2 || q.shape[0] < 1) {
    throw new Error(`${op}: q must be (S, H·hd) with S ≥ 1, got [${q.shape.join(", ")}]`);
  }
  const S = q.shape[0];
  expectShape(q, [S, H * hd], `${op}: q (S, H·hd)`);
  expectShape(k, [S, KV * hd], `${op}: k (S, KV·hd)`);
  expectShape(v, [S, KV * hd], `${op}: v (S, KV·hd)`);
  for (const t of [q, k, v]) {
    if (t.dtype === "i32") throw new Error(`${op}: "${t.name}" must be a float, got i32`);
  }
  return { S, H, KV, hd, window, softcap };
}

function params(S: number, H: number, KV: number, window: number, o: AttentionOptions): Params {
  return new Params().u32(S).u32(H).u32(KV).u32(window).f32(o.scale).f32(o.softcap ?? 0);
}

/**
 * The kernels' compile-time feature flags: lavapipe runs both sides of a branch under a mask,
 * so the soft-cap's tanh and the window's mask are compiled out when unused instead of being
 * tested at run time.
 */
function flags(o: AttentionOptions): { CAPPED: number; WINDOWED: number } {
  return { CAPPED: (o.softcap ?? 0) > 0 ? 1 : 0, WINDOWED: (o.window ?? 0) > 0 ? 1 : 0 };
}

/**
 * Causal attention forward.
 * @param q (S, H·hd)
 * @param k (S, KV·hd)
 * @param v (S, KV·hd)
 * @returns out (S, H·hd) and lse (H, S), the natural log-sum-exp of each row's (capped,
 *   scaled) scores, which the backward needs.
 */
export function attentionForward(
  dev: Device,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions,
): { out: Tensor; lse: Tensor } {
  const { S, H, KV, hd, window } = validate("attentionForward", q, k, v, opts);
  const tag = opts.tag ?? "activations";
  const name = opts.name ?? "attn";
  const out = dev.tensor([S, H * hd], { tag, name: `${name}.out` }); // (S, H·hd)
  const lse = dev.tensor([H, S], { tag, name: `${name}.lse`, dtype: "f32" }); // (H, S) f32 always
  const { R, C, WG } = tiling(dev, hd, opts);
  const kv = streamed(k, v, 3, name, opts.stage ?? true);
  withStagedTextures(dev, kv.staged, (textures) =>
    dev.dispatch({
      kernel: "attention_fwd",
      source: kernel("attention_fwd", { ...flags(opts), HD4: hd / 4, R, C, WG, OPERANDS: kv.wgsl }),
      bindings: [q, out, lse, ...kv.bindings],
      params: params(S, H, KV, window, opts),
      textures,
      workgroups: [ceilDiv(S, R * WG), H],
    }));
  return { out, lse };
}

/**
 * Causal attention backward (FlashAttention-2 style: P is recomputed from q, k and lse).
 * @param dOut (S, H·hd) gradient of the loss with respect to `out`
 * @param q (S, H·hd)
 * @param k (S, KV·hd)
 * @param v (S, KV·hd)
 * @param out (S, H·hd) forward output
 * @param lse (H, S) forward log-sum-exp
 * @returns new gradient tensors dq (S, H·hd), dk (S, KV·hd), dv (S, KV·hd)
 */
export function attentionBackward(
  dev: Device,
  dOut: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Tensor,
  opts: AttentionOptions,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const { S, H, KV, hd, window } = validate("attentionBackward", q, k, v, opts);
  expectShape(dOut, [S, H * hd], "attentionBackward: dOut (S, H·hd)");
  expectShape(out, [S, H * hd], "attentionBackward: out (S, H·hd)");
  expectShape(lse, [H, S], "attentionBackward: lse (H, S)");
  const tag = opts.tag ?? "activations";
  const name = opts.name ?? "attn";
  const p = params(S, H, KV, window, opts);
  const { R, B, WG } = tiling(dev, hd, opts);
  const dsum = dev.tensor([H, S], { tag: "workspace", name: `${name}.D`, dtype: "f32" }); // (H, S)
  const dq = dev.tensor([S, H * hd], { tag, name: `${name}.dq` }); // (S, H·hd)
  const dk = dev.tensor([S, KV * hd], { tag, name: `${name}.dk` }); // (S, KV·hd)
  const dv = dev.tensor([S, KV * hd], { tag, name: `${name}.dv` }); // (S, KV·hd)
  const kv = streamed(k, v, 6, name, opts.stage ?? true);
  withStagedTextures(dev, kv.staged, (textures) =>
    dev.dispatch({
      kernel: "attention_bwd_dq",
      source: kernel("attention_bwd_dq", {
        ...flags(opts),
        HD4: hd / 4,
        R,
        C: B,
        WG,
        OPERANDS: kv.wgsl,
      }),
      bindings: [q, out, dOut, lse, dq, dsum, ...kv.bindings],
      params: p,
      textures,
      workgroups: [ceilDiv(S, R * WG), H],
    }));
  const qdo = streamed(q, dOut, 6, name, opts.stage ?? true);
  withStagedTextures(dev, qdo.staged, (textures) =>
    dev.dispatch({
      kernel: "attention_bwd_dkdv",
      source: kernel("attention_bwd_dkdv", {
        ...flags(opts),
        HD4: hd / 4,
        R,
        Q: B,
        WG,
        OPERANDS: qdo.wgsl,
      }),
      bindings: [k, v, lse, dsum, dk, dv, ...qdo.bindings],
      params: p,
      textures,
      workgroups: [ceilDiv(S, R * WG), KV],
    }));
  dsum.dispose();
  return { dq, dk, dv };
}
