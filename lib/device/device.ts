/**
 * The device contract.
 *
 * A `Device` owns an {@link Allocator} and runs kernels. Two implementations exist:
 *
 * - `WebGPUDevice` dispatches real WGSL kernels and reads results back.
 * - `MetaDevice` runs the *same* calls without data or dispatch: every allocation and free
 *   happens exactly as on WebGPU, so memory can be planned at full model scale.
 *
 * Everything above the device (ops, layers, models, training) is written once against this
 * class. Ops allocate their outputs with {@link Device.tensor} and encode work with
 * {@link Device.dispatch}; the only data-dependent operation is {@link Device.read}, which the
 * meta device answers with NaN (floats) or 0 (integers).
 *
 * Ownership: every tensor is disposed explicitly or by the {@link Device.scope} that
 * created it. Kernel bindings: tensors at `@group(0) @binding(i)` in the order given;
 * uniform parameters, if any, at `@group(1) @binding(0)`.
 */

import { Allocator, type Block, type BufferBackend, type Resource, type Tag } from "./allocator.ts";
import { bytesPerElement, type DType, type FloatCounting, floatStorage, numel } from "./dtype.ts";
import { BindingLimitError } from "./errors.ts";
import { HostTensor } from "./host_tensor.ts";
import { checkBindingTypes, halfSource, kernelSource, type Params } from "./kernel_source.ts";
import { ParamsCache, type ParamsEntry } from "./params_cache.ts";
import { type Storage, Tensor } from "./tensor.ts";
import {
  canStageAsTexture,
  MAX_TEXTURE_ROWS,
  TensorTexture,
  TEXTURE_ROW_FLOATS,
} from "./texture.ts";

/** Options of a new tensor. */
export interface TensorOptions {
  /** Accounting tag. */
  tag: Tag;
  /** Name shown in reports and errors. */
  name?: string;
  /** Element type (default: the device's float storage, {@link Device.floatType}). */
  dtype?: DType;
  /**
   * Count this float tensor as `countAs` whatever the device's counting — e.g. an fp32
   * upcast inside a bf16 setup, planned on the meta device. `"f32"` also makes the tensor
   * f32 on a mixed-precision (`"f16"`) device.
   */
  countAs?: FloatCounting;
}

/** One kernel dispatch. */
export interface KernelCall {
  /** Kernel name, for profiles and errors (`kernels/<name>.wgsl` when `source` is absent). */
  kernel: string;
  /** WGSL source; defaults to the text of `kernels/<kernel>.wgsl`. */
  source?: string;
  /** Entry point (default `main`). */
  entryPoint?: string;
  /** WGSL `override` constants. */
  constants?: Record<string, number>;
  /** Tensors bound at `@group(0) @binding(0..n-1)`. */
  bindings: Tensor[];
  /** Uniform parameters at `@group(1) @binding(0)`. */
  params?: Params;
  /** Staged textures at `@group(2) @binding(0..)` (see `texture.ts`). */
  textures?: TensorTexture[];
  /** Workgroup counts. Each must be ≤ 65535. */
  workgroups: readonly [number, number?, number?];
}

/** Device limits that shape kernels and chunking. */
export interface DeviceLimits {
  /** Largest tensor one kernel binding may hold, in bytes. */
  maxStorageBufferBindingSize: number;
  /** Largest buffer, in bytes. */
  maxBufferSize: number;
  /** Most workgroups a dispatch may have in each dimension. */
  maxComputeWorkgroupsPerDimension: number;
  /** Most storage buffers one kernel may bind (WebGPU's default is 8; lavapipe gives 32). */
  maxStorageBuffersPerShaderStage: number;
}

/** A dispatch's cached parameter block and whether it was just created (must be written). */
export interface PreparedParams<H = unknown> {
  /** The cache entry. */
  entry: ParamsEntry<H>;
  /** True when the entry is new: its buffer does not hold the bytes yet. */
  created: boolean;
}

let scopeId = 0;

/** Base class of both devices. */
export abstract class Device<H = unknown> {
  /** Which implementation this is. */
  abstract readonly kind: "webgpu" | "meta";
  /** Limits that kernels and the `"auto"` chunking respect. */
  abstract readonly limits: DeviceLimits;
  /** How float tensors are stored or counted: f32, mixed f16 (both devices), bf16 (meta). */
  readonly floats: FloatCounting;
  /** The storage of float tensors created without a dtype: f16 when `floats` is f16. */
  readonly floatType: "f32" | "f16";
  /** The allocator behind every tensor of this device: pool, accounting, budget, timeline. */
  readonly allocator: Allocator<H>;
  /**
   * Register tiles of the unrolled kernels: `"large"` (default, tuned on lavapipe), or
   * `"small"` for a shader compiler that cannot afford them (SwiftShader's LLVM: attention's
   * 32-row blocks did not compile in minutes and past 10 GB). Kernels that honour it
   * (lib/ops/attention.ts) only split the same per-row work differently: allocations are the
   * same, results the same to rounding (attention's forward bit for bit without a window).
   */
  kernelTiles: "large" | "small" = "large";
  /** Uniform buffers of kernel parameters, cached by content (the same on both devices). */
  protected readonly params: ParamsCache<H>;
  #scopes: { id: number; tensors: Set<Tensor> }[] = [];
  #pipelineKeys = new Set<string>();
  #sourceIds = new Map<string, number>();
  #halfSources = new Map<string, string>();

  /**
   * Sets up the allocator over `backend`; `floats` is how float elements are counted;
   * `paramsEntries` bounds the parameter cache (it must exceed the dispatches of one batch).
   */
  protected constructor(backend: BufferBackend<H>, floats: FloatCounting, paramsEntries?: number) {
    this.allocator = new Allocator(backend);
    this.floats = floats;
    this.floatType = floatStorage(floats);
    this.params = new ParamsCache(this.allocator, paramsEntries);
  }

  /** Distinct compute pipelines (kernel source + entry point + constants) dispatched so far. */
  get pipelineCount(): number {
    return this.#pipelineKeys.size;
  }

  /**
   * Storage buffers one kernel may bind for tensors: `maxStorageBuffersPerShaderStage` less
   * one for the parameter block, which is a storage buffer where kernels read their
   * parameters from storage (lavapipe). The one is kept aside on every device, so a meta
   * device given a WebGPU device's limits plans the same dispatches (multi-tensor kernels
   * size their groups from this).
   */
  get tensorBindingsPerKernel(): number {
    return this.limits.maxStorageBuffersPerShaderStage - 1;
  }

  /** Parameter blocks held by the cache now. */
  get paramsCacheSize(): number {
    return this.params.size;
  }

  /** A new tensor whose content is undefined (use {@link zeros} for zeros). */
  tensor(shape: readonly number[], opts: TensorOptions): Tensor {
    const dtype = opts.dtype ?? (opts.countAs === "f32" ? "f32" : this.floatType);
    const bytes = numel(shape) * bytesPerElement(dtype, opts.countAs ?? this.floats);
    const block = this.allocator.alloc(bytes, opts.tag, opts.name ?? opts.tag);
    const storage: Storage = {
      block,
      refs: 0,
      release: (b) => this.allocator.free(b as never),
    };
    const t = new Tensor(shape, dtype, storage);
    this.#scopes.at(-1)?.tensors.add(t);
    return t;
  }

  /** A new tensor filled with zeros. */
  zeros(shape: readonly number[], opts: TensorOptions): Tensor {
    const t = this.tensor(shape, opts);
    this.fill(t, 0);
    return t;
  }

  /** A new tensor holding `data` (length must match the shape). */
  upload(
    data: Float32Array | Int32Array | readonly number[],
    shape: readonly number[],
    opts: TensorOptions,
  ): Tensor {
    const dtype = opts.dtype ?? (data instanceof Int32Array ? "i32" : this.floatType);
    if (data.length !== numel(shape)) {
      throw new Error(
        `upload "${opts.name ?? opts.tag}": ${data.length} values do not fill shape [${
          shape.join(", ")
        }] (${numel(shape)} elements)`,
      );
    }
    const t = this.tensor(shape, { ...opts, dtype });
    this.write(
      t,
      dtype === "i32"
        ? (data instanceof Int32Array ? data : Int32Array.from(data))
        : (data instanceof Float32Array ? data : Float32Array.from(data)),
    );
    return t;
  }

  /**
   * Runs `fn` and disposes every tensor created inside it, except the ones it returns
   * (a tensor, an array of tensors, or an object whose values are tensors) and the ones
   * passed to {@link keep}.
   */
  scope<T>(fn: () => T): T {
    const s = { id: ++scopeId, tensors: new Set<Tensor>() };
    this.#scopes.push(s);
    let out: T;
    try {
      out = fn();
    } catch (e) {
      this.#scopes.pop();
      for (const t of s.tensors) t.dispose();
      throw e;
    }
    this.#scopes.pop();
    const kept = collectTensors(out);
    const parent = this.#scopes.at(-1);
    for (const t of s.tensors) {
      if (kept.has(t)) parent?.tensors.add(t);
      else t.dispose();
    }
    return out;
  }

  /** Excludes tensors from the innermost scope's cleanup (they become the caller's). */
  keep<T extends Tensor>(t: T): T {
    for (const s of this.#scopes) s.tensors.delete(t);
    return t;
  }

  /** Moves a tensor's bytes to another tag (e.g. "checkpoints"); totals are unchanged. */
  retag(t: Tensor, tag: Tag): void {
    t.retag(tag, (b, newTag) => this.allocator.retag(b as never, newTag));
  }

  /** Sets the phase label recorded in the memory timeline. */
  setPhase(phase: string): void {
    this.allocator.phase = phase;
  }

  /** Sets the memory budget in bytes (`Infinity` for none). */
  setBudget(bytes: number): void {
    this.allocator.budget = bytes;
  }

  /**
   * A read-only texture copy of `t` (see `texture.ts`), accounted as `workspace`. The copy is
   * encoded now; dispose the texture once the kernels reading it are dispatched.
   */
  texture(t: Tensor, name = `${t.name}.texture`): TensorTexture {
    if (!canStageAsTexture(t) || t.dtype !== this.floatType) {
      throw new Error(
        `cannot stage "${t.name}" [${t.shape.join(", ")}] (${t.dtype}) as a texture: it must be ` +
          `${this.floatType} (this device's float storage; the texture format is ` +
          `${this.floatType === "f16" ? "rgba16float" : "rgba32float"}) with a multiple of 4 ` +
          `elements and at most ${MAX_TEXTURE_ROWS * TEXTURE_ROW_FLOATS}`,
      );
    }
    const rows = Math.ceil(t.size / TEXTURE_ROW_FLOATS);
    const bytes = rows * TEXTURE_ROW_FLOATS * bytesPerElement(t.dtype, this.floats);
    const block = this.allocator.alloc(bytes, "workspace", name, { kind: "texture" });
    try {
      this.stageTexture(t, block);
    } catch (e) {
      this.allocator.free(block);
      throw e;
    }
    return new TensorTexture(name, rows, t.dtype as "f32" | "f16", block, block.handle, (tex) => {
      this.allocator.free(tex.block as never);
    });
  }

  /**
   * Encodes the copy of `t` into the pooled texture of `block` (whose rows are the block's
   * size class in rows: at least the rows `t` needs).
   */
  protected abstract stageTexture(t: Tensor, block: Block<H>): void;

  /** Fill a tensor with a constant. */
  abstract fill(t: Tensor, value: number): void;
  /** Overwrite a tensor's data from the host. */
  abstract write(t: Tensor, data: Float32Array | Int32Array): void;
  /** Copy `count` elements from `src[srcOffset..]` to `dst[dstOffset..]`. */
  abstract copy(
    src: Tensor,
    srcOffset: number,
    dst: Tensor,
    dstOffset: number,
    count: number,
  ): void;
  /** Encode a kernel dispatch. */
  abstract dispatch(call: KernelCall): void;
  /**
   * Read a tensor back to the host (NaN / 0 on the meta device), through a pooled `readback`
   * buffer of the tensor's size.
   */
  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    return await this.#viaReadback(t, (staging) => this.readVia(t, staging));
  }

  /**
   * Copies `t` into host memory: through a pooled `readback` buffer (as {@link read}) into an
   * array the returned {@link HostTensor} owns, its bytes counted under the allocator's `host`
   * tag (outside the device's live bytes, peak and budget) from this call until the host
   * tensor is disposed. `t` stays live: dispose it to free the device copy. On the meta device
   * the host tensor counts the same bytes and holds no data.
   */
  async toHost(t: Tensor, name = `${t.name}.host`): Promise<HostTensor> {
    t.block; // throws when disposed
    const block = this.allocator.allocHost(t.bytes, name);
    let data: Float32Array | Int32Array | null;
    try {
      data = await this.#viaReadback(t, (staging) => this.readToHost(t, staging));
    } catch (e) {
      this.allocator.freeHost(block);
      throw e;
    }
    return new HostTensor(t.shape, t.dtype, block, data, (b) => this.allocator.freeHost(b));
  }

  /**
   * A new device tensor holding a host copy's data (see {@link toHost}), written through a
   * pooled mappable `upload` buffer of its size. `h` stays counted until disposed.
   */
  async fromHost(h: HostTensor, opts: TensorOptions): Promise<Tensor> {
    const data = h.data; // throws when disposed
    const t = this.tensor(h.shape, { ...opts, dtype: h.dtype });
    if (t.bytes !== h.bytes) {
      t.dispose();
      throw new Error(
        `fromHost "${h.name}": the host copy holds ${h.bytes} bytes but the new tensor counts ` +
          `${t.bytes}; bring it back on the device (and float counting) that made it`,
      );
    }
    const staging = this.allocator.acquire("upload", Math.max(4, Math.ceil(t.bytes / 4) * 4));
    try {
      await this.uploadVia(t, data, staging);
    } catch (e) {
      this.allocator.discard(staging);
      t.dispose();
      throw e;
    }
    this.allocator.release(staging);
    return t;
  }

  /** Runs `fn` with a pooled readback buffer of `t`'s size (discarded when `fn` fails). */
  async #viaReadback<T>(t: Tensor, fn: (staging: Resource<H>) => Promise<T>): Promise<T> {
    t.block; // throws when disposed
    this.beforeRead();
    const staging = this.allocator.acquire("readback", Math.max(4, Math.ceil(t.bytes / 4) * 4));
    let out: T;
    try {
      out = await fn(staging);
    } catch (e) {
      this.allocator.discard(staging);
      throw e;
    }
    this.allocator.release(staging);
    return out;
  }

  /** The data of a {@link toHost} copy: {@link readVia} (the meta device keeps none). */
  protected readToHost(
    t: Tensor,
    staging: Resource<H>,
  ): Promise<Float32Array | Int32Array | null> {
    return this.readVia(t, staging);
  }

  /**
   * Writes `data` (null on the meta device) into `t` through the mappable `staging` buffer;
   * the buffer is unmapped and free to reuse when this resolves.
   */
  protected abstract uploadVia(
    t: Tensor,
    data: Float32Array | Int32Array | null,
    staging: Resource<H>,
  ): Promise<void>;

  /** Throws what must stop a read before it starts (e.g. errors reported asynchronously). */
  protected beforeRead(): void {}

  /** Copies `t` into `staging` and returns its data (the buffer is unmapped afterwards). */
  protected abstract readVia(
    t: Tensor,
    staging: Resource<H>,
  ): Promise<Float32Array | Int32Array>;
  /** Submit pending work and wait for the device to finish it. */
  abstract sync(): Promise<void>;
  /** Release the device. */
  abstract destroy(): void;

  /** Read a float tensor (f16 tensors are widened to f32). */
  async readF32(t: Tensor): Promise<Float32Array> {
    if (t.dtype === "i32") throw new Error(`readF32: "${t.name}" is ${t.dtype}, not a float`);
    return await this.read(t) as Float32Array;
  }

  /** Read one scalar. */
  async readScalar(t: Tensor): Promise<number> {
    return (await this.read(t))[0];
  }

  /**
   * Validates a dispatch and looks up its pipeline key and parameter block. Returns null when a
   * workgroup count is 0 (nothing runs). Both devices call this, so the pipelines counted and
   * the uniform buffers reserved are the same on both.
   */
  protected prepare(
    call: KernelCall,
  ): { key: string; source: string; params: PreparedParams<H> | null } | null {
    this.validateCall(call);
    this.validateTextures(call);
    const { source, half } = this.#resolveSource(call);
    const [x, y = 1, z = 1] = call.workgroups;
    if (x === 0 || y === 0 || z === 0) return null;
    const key = this.pipelineKey(half ? { ...call, source } : call);
    this.#pipelineKeys.add(key);
    return {
      key,
      source,
      params: call.params ? this.params.get(key, call.params) : null,
    };
  }

  /**
   * The WGSL a call runs: its source, or the f16 variant of it ({@link halfSource}) when the
   * tensors bound to its storage-float (`SF`) bindings are f16. Checks every bound tensor's
   * dtype against its declaration (`array<f32>` needs f32, `array<SF>` the call's storage
   * float, `array<i32>` i32; textures likewise).
   */
  #resolveSource(call: KernelCall): { source: string; half: boolean } {
    const base = call.source ?? kernelSource(call.kernel);
    const storage = checkBindingTypes(
      call.kernel,
      base,
      call.bindings.map((t) => ({ name: t.name, dtype: t.dtype })),
      (call.textures ?? []).map((t) => ({ name: t.name, dtype: t.dtype })),
    );
    if (storage !== "f16") return { source: base, half: false };
    let half = this.#halfSources.get(base);
    if (half === undefined) {
      half = halfSource(call.kernel, base);
      this.#halfSources.set(base, half);
    }
    return { source: half, half: true };
  }

  /**
   * A short key naming a call's pipeline: its source (the kernel name when it comes from
   * `kernels/`, else a number per distinct source text), entry point and constants.
   */
  protected pipelineKey(call: KernelCall): string {
    let src = `k:${call.kernel}`;
    if (call.source !== undefined) {
      let id = this.#sourceIds.get(call.source);
      if (id === undefined) this.#sourceIds.set(call.source, id = this.#sourceIds.size);
      src = `s:${id}`;
    }
    const constants = call.constants ? JSON.stringify(call.constants) : "";
    return `${src}\u0000${call.entryPoint ?? "main"}\u0000${constants}`;
  }

  /** Throws unless every texture of a call is live. */
  protected validateTextures(call: KernelCall): void {
    for (const tex of call.textures ?? []) {
      if (tex.disposed) {
        throw new Error(`kernel "${call.kernel}": texture "${tex.name}" was used after dispose()`);
      }
    }
  }

  /** Throws unless a copy of `count` elements stays inside both tensors. */
  protected checkCopy(
    src: Tensor,
    srcOffset: number,
    dst: Tensor,
    dstOffset: number,
    count: number,
  ): void {
    if (
      srcOffset < 0 || dstOffset < 0 || count < 0 || srcOffset + count > src.size ||
      dstOffset + count > dst.size
    ) {
      throw new Error(
        `copy of ${count} elements from "${src.name}"[${srcOffset}..] (size ${src.size}) to ` +
          `"${dst.name}"[${dstOffset}..] (size ${dst.size}) is out of bounds`,
      );
    }
    src.block;
    dst.block;
    if (src.dtype !== dst.dtype) {
      throw new Error(
        `copy from "${src.name}" (${src.dtype}) to "${dst.name}" (${dst.dtype}): a copy does ` +
          `not convert; create both tensors with one dtype`,
      );
    }
    // WebGPU copies whole 4-byte words: f16 copies start at even elements and move an even
    // count, except a copy that ends at the destination's end (the padding absorbs the word).
    if (
      src.dtype === "f16" &&
      (srcOffset % 2 !== 0 || dstOffset % 2 !== 0 ||
        (count % 2 !== 0 && dstOffset + count !== dst.size))
    ) {
      throw new Error(
        `copy of ${count} f16 elements from "${src.name}"[${srcOffset}..] to ` +
          `"${dst.name}"[${dstOffset}..]: f16 copies need even offsets and an even count ` +
          `(WebGPU copies 4-byte words); use an even hidden size`,
      );
    }
  }

  /** Checks a dispatch's shape of work before encoding it. */
  protected validateCall(call: KernelCall): void {
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    for (const w of call.workgroups) {
      if (w === undefined) continue;
      if (!Number.isInteger(w) || w < 0 || w > max) {
        throw new Error(
          `kernel "${call.kernel}": workgroup count ${w} is outside 0..${max}; ` +
            `split the work or use a larger tile`,
        );
      }
    }
    const seen = new Map<number, Tensor>();
    for (const t of call.bindings) {
      const other = seen.get(t.block.id);
      if (other) {
        throw new Error(
          `kernel "${call.kernel}": "${t.name}" is bound twice (also as "${other.name}"); ` +
            `WebGPU forbids one buffer in two bindings of a dispatch when one is written — ` +
            `copy one operand first`,
        );
      }
      seen.set(t.block.id, t);
      if (t.bytes > this.limits.maxStorageBufferBindingSize) {
        throw new BindingLimitError(
          call.kernel,
          t.name,
          t.bytes,
          this.limits.maxStorageBufferBindingSize,
        );
      }
      t.block; // throws when disposed
    }
  }
}

function collectTensors(v: unknown, out = new Set<Tensor>()): Set<Tensor> {
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) v.forEach((x) => collectTensors(x, out));
  else if (v && typeof v === "object" && !(v instanceof Promise)) {
    for (const x of Object.values(v)) collectTensors(x, out);
  }
  return out;
}
