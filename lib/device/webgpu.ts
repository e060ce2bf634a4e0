/**
 * The WebGPU device: adapter and device acquisition with clear errors, a pipeline cache
 * keyed by WGSL source + constants, batched command encoding and readback.
 *
 * Dispatches are recorded into one open compute pass (each dispatch is its own
 * synchronization scope in WebGPU, so later dispatches see earlier writes) and submitted in
 * batches; a write, copy, read or sync closes the batch. Errors WebGPU reports asynchronously
 * (validation, out-of-memory, device loss) are raised by the next `read()` or `sync()`.
 *
 * Every GPU resource comes from the allocator's pool (storage buffers, textures, uniform
 * buffers, readback and upload buffers), so the reserved bytes are what the device holds. A dispatch
 * creates no object in the steady state: parameters are cached by content (`params_cache.ts`),
 * bind groups by pipeline and bound resources, texture views once per texture. Deno frees
 * WebGPU objects only when the garbage collector collects their wrappers, so per-dispatch
 * objects piled up in host memory between collections.
 */

import type { Block, BufferBackend, Resource, ResourceKind, Tag } from "./allocator.ts";
import { Device, type DeviceLimits, type KernelCall } from "./device.ts";
import {
  DeviceLostError,
  OutOfMemoryError,
  WebGPUUnavailableError,
  WGSLCompileError,
} from "./errors.ts";
import { kernelSource, paramsInStorageSource } from "./kernel_source.ts";
import { overheadFor } from "./overhead.ts";
import { ensureRuntimeDir } from "./runtime_dir.ts";
import { PARAMS_CACHE_ENTRIES } from "./params_cache.ts";
import type { Tensor } from "./tensor.ts";
import { TEXTURE_ROW_FLOATS, TEXTURE_ROW_TEXELS } from "./texture.ts";

/** Options of {@link WebGPUDevice.create}. */
export interface WebGPUDeviceOptions {
  /** Dispatches per submitted command buffer (default 256). */
  batchSize?: number;
  /** Record per-kernel GPU time with timestamp queries (see {@link WebGPUDevice.profile}). */
  profile?: boolean;
  /** Most bind groups kept for reuse (default {@link BIND_GROUP_CACHE_ENTRIES}). */
  bindGroupEntries?: number;
  /**
   * Float storage: `"f32"` (default) or `"f16"` (mixed precision: float tensors are f16 unless
   * created f32; needs the adapter feature `shader-f16`).
   */
  floats?: "f32" | "f16";
  /**
   * Where kernels read their parameter blocks: `"uniform"` buffers, or `"storage"` (read-only
   * storage buffers, {@link paramsInStorageSource}). Default: `"storage"` on lavapipe, whose
   * uniform inlining compiles a shader copy per new parameter value, else `"uniform"`.
   */
  paramsIn?: "uniform" | "storage";
  /**
   * {@link Device.kernelTiles}. Default: `"small"` on SwiftShader (Chromium's software
   * adapter, whose LLVM compile of the large unrolled tiles runs for minutes and out of
   * memory), else `"large"`.
   */
  kernelTiles?: "large" | "small";
}

/** A pooled texture and its one view. */
export interface PooledTexture {
  /** The `rgba32float` (or, on an f16 device, `rgba16float`) texture. */
  texture: GPUTexture;
  /** Its view, created once. */
  view: GPUTextureView;
}

/** What the allocator's pool holds on WebGPU. */
export type WebGPUHandle = GPUBuffer | PooledTexture;

/** Default number of bind groups kept for reuse. */
const BIND_GROUP_CACHE_ENTRIES = 4096;

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  /** Number of the pipeline, for bind group keys. */
  id: number;
  layouts: GPUBindGroupLayout[];
}

const INSTALL_HINT = "On a CPU-only Linux machine install Mesa's software Vulkan driver: " +
  "`sudo apt-get install -y mesa-vulkan-drivers libvulkan1`, and set XDG_RUNTIME_DIR " +
  "(e.g. `export XDG_RUNTIME_DIR=$(mktemp -d)`).";

/** Per-kernel GPU time, from timestamp queries. */
export interface KernelProfile {
  /** Kernel name. */
  kernel: string;
  /** Number of timed dispatches. */
  calls: number;
  /** Total GPU time, in milliseconds. */
  ms: number;
}

const PROFILE_SLOTS = 4096;

/** Real compute on `navigator.gpu`. */
export class WebGPUDevice extends Device<WebGPUHandle> {
  /** Always `"webgpu"`. */
  readonly kind = "webgpu" as const;
  /** The acquired device's binding, buffer and workgroup limits. */
  readonly limits: DeviceLimits;
  /** The underlying WebGPU device. */
  readonly gpu: GPUDevice;
  /** Information about the adapter the device was acquired from. */
  readonly adapterInfo: GPUAdapterInfo;
  #pipelines = new Map<string, CachedPipeline>();
  #modules = new Map<string, GPUShaderModule>();
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #pending = 0;
  #batchSize: number;
  #emptyGroups = new WeakMap<GPUComputePipeline, GPUBindGroup>();
  /** Bind groups of storage buffers and textures, by pipeline and bound resources (LRU). */
  #groups = new Map<string, GPUBindGroup>();
  #groupEntries: number;
  /** Numbers of pooled resources, for bind group keys. */
  #resourceIds = new WeakMap<object, number>();
  #nextResourceId = 0;
  /** Bind group lookups served from the cache, and the ones that created a group. */
  #groupHits = 0;
  #groupMisses = 0;
  #errors: Error[] = [];
  /** Compilation checks of shader modules created since the last read/sync. */
  #compileChecks: Promise<void>[] = [];
  #lost: GPUDeviceLostInfo | null = null;
  #destroyed = false;
  /** Submitted command buffers since creation (for "submits per step"). */
  submits = 0;
  /** Dispatches encoded since creation. */
  dispatches = 0;
  #profile: {
    querySet: GPUQuerySet;
    resolve: GPUBuffer;
    names: string[];
    totals: Map<string, KernelProfile>;
  } | null = null;

  /** The format of staged textures: `rgba16float` on an f16 device, else `rgba32float`. */
  readonly textureFormat: "rgba32float" | "rgba16float";
  /** Where kernels read their parameter blocks ({@link WebGPUDeviceOptions.paramsIn}). */
  readonly paramsIn: "uniform" | "storage";

  private constructor(gpu: GPUDevice, info: GPUAdapterInfo, opts: WebGPUDeviceOptions) {
    const backend: BufferBackend<WebGPUHandle> = {
      create: (size: number, kind: ResourceKind, tag: Tag | null) =>
        this.#createResource(size, kind, tag),
      destroy: (h: WebGPUHandle, kind: ResourceKind) => this.#destroyResource(h, kind),
    };
    const batchSize = opts.batchSize ?? 256;
    // An entry the parameter cache pushes out is rewritten at once: it must not be in use by
    // the batch being recorded, so the cache holds more entries than a batch has dispatches.
    super(backend, opts.floats ?? "f32", Math.max(PARAMS_CACHE_ENTRIES, batchSize + 1));
    this.textureFormat = this.floatType === "f16" ? "rgba16float" : "rgba32float";
    this.paramsIn = opts.paramsIn ??
      (overheadFor(info.description || info.vendor || "")?.driver === "lavapipe"
        ? "storage"
        : "uniform");
    this.kernelTiles = opts.kernelTiles ?? (isSwiftShader(info) ? "small" : "large");
    this.gpu = gpu;
    this.adapterInfo = info;
    this.#batchSize = batchSize;
    this.#groupEntries = opts.bindGroupEntries ?? BIND_GROUP_CACHE_ENTRIES;
    this.limits = {
      maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize,
      maxBufferSize: gpu.limits.maxBufferSize,
      maxComputeWorkgroupsPerDimension: gpu.limits.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: gpu.limits.maxStorageBuffersPerShaderStage,
    };
    gpu.lost.then((info) => {
      if (!this.#destroyed) this.#lost = info;
    });
    gpu.addEventListener("uncapturederror", (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.#errors.push(new Error(`WebGPU error: ${err.message}`));
    });
    if (opts.profile) {
      if (!gpu.features.has("timestamp-query")) {
        throw new WebGPUUnavailableError(
          "profiling needs the adapter feature timestamp-query, which this adapter lacks",
        );
      }
      this.#profile = {
        querySet: gpu.createQuerySet({ type: "timestamp", count: PROFILE_SLOTS }),
        resolve: gpu.createBuffer({
          size: PROFILE_SLOTS * 8,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
        names: [],
        totals: new Map(),
      };
    }
  }

  /** Acquires an adapter and a device with the adapter's maximum buffer limits. */
  static async create(opts: WebGPUDeviceOptions = {}): Promise<WebGPUDevice> {
    if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
      throw new WebGPUUnavailableError(
        "WebGPU is not available in this runtime (navigator.gpu is undefined). " +
          "Use Deno >= 2.9 (`npm install -g deno@2.9.6`), or use --device meta to plan memory without compute.",
      );
    }
    ensureRuntimeDir();
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) {
      throw new WebGPUUnavailableError(
        `no WebGPU adapter found. ${INSTALL_HINT} Or use --device meta to plan memory without compute.`,
      );
    }
    const wanted: GPUFeatureName[] = [];
    if (opts.floats === "f16") {
      requireHalfFeature(
        adapter.features,
        adapter.info.description || adapter.info.vendor || "unknown",
      );
      wanted.push("shader-f16");
    }
    if (opts.profile && adapter.features.has("timestamp-query")) wanted.push("timestamp-query");
    const gpu = await adapter.requestDevice({
      requiredFeatures: wanted,
      requiredLimits: {
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
        maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
        maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupSizeY: adapter.limits.maxComputeWorkgroupSizeY,
      },
    });
    return new WebGPUDevice(gpu, adapter.info, opts);
  }

  /** Creates a pooled resource of `size` bytes (a size class). */
  #createResource(size: number, kind: ResourceKind, tag: Tag | null): WebGPUHandle {
    this.#check();
    this.gpu.pushErrorScope("out-of-memory");
    let made: WebGPUHandle;
    if (kind === "texture") {
      const texture = this.gpu.createTexture({
        label: "pool.texture",
        size: [TEXTURE_ROW_TEXELS, size / (TEXTURE_ROW_FLOATS * this.#floatBytes)],
        format: this.textureFormat,
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
      });
      made = { texture, view: texture.createView() };
    } else {
      made = this.gpu.createBuffer({
        label: `pool.${kind}`,
        size,
        usage: kind === "storage"
          ? GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST
          : kind === "uniform"
          ? GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST |
            (this.paramsIn === "storage" ? GPUBufferUsage.STORAGE : 0)
          : kind === "upload"
          ? GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC
          : GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
    }
    this.gpu.popErrorScope().then((err) => {
      if (err) {
        const s = this.allocator.stats();
        this.#errors.push(
          new OutOfMemoryError(
            size,
            tag ?? `(${kind})`,
            size,
            s.liveByTag,
            this.allocator.largest(5),
            "WebGPU's memory",
          ),
        );
      }
    });
    this.#resourceIds.set(made, this.#nextResourceId++);
    return made;
  }

  #destroyResource(h: WebGPUHandle, kind: ResourceKind): void {
    if (kind === "texture") (h as PooledTexture).texture.destroy();
    else (h as GPUBuffer).destroy();
    // Bind groups may name the resource: drop them all (resources are destroyed only when
    // the pool is released, which is rare).
    if (kind === "storage" || kind === "texture") this.#groups.clear();
  }

  /** Bind group cache counters: lookups served from the cache and groups created. */
  bindGroupStats(): { entries: number; hits: number; misses: number } {
    return { entries: this.#groups.size, hits: this.#groupHits, misses: this.#groupMisses };
  }

  #check(): void {
    if (this.#lost) {
      throw new DeviceLostError(
        `the WebGPU device was lost (${this.#lost.reason}): ${this.#lost.message}. ` +
          `Create a new device; if this repeats, lower the sequence length or batch size.`,
      );
    }
    if (this.#destroyed) throw new Error("this WebGPU device was destroyed");
  }

  #raisePending(): void {
    this.#check();
    if (this.#errors.length > 0) {
      const errs = this.#errors.splice(0);
      throw errs.find((e) => e instanceof WGSLCompileError) ?? errs[0];
    }
  }

  #module(name: string, code: string): GPUShaderModule {
    if (this.paramsIn === "storage") code = paramsInStorageSource(code);
    let m = this.#modules.get(code);
    if (!m) {
      m = this.gpu.createShaderModule({ label: name, code });
      this.#modules.set(code, m);
      this.#compileChecks.push(
        m.getCompilationInfo().then((info) => {
          const errs = info.messages.filter((x) => x.type === "error");
          if (errs.length > 0) this.#errors.unshift(formatCompileError(name, code, errs));
        }),
      );
    }
    return m;
  }

  #pipeline(call: KernelCall, key: string, code: string): CachedPipeline {
    let p = this.#pipelines.get(key);
    if (!p) {
      const pipeline = this.gpu.createComputePipeline({
        label: call.kernel,
        layout: "auto",
        compute: {
          module: this.#module(call.kernel, code),
          entryPoint: call.entryPoint ?? "main",
          constants: call.constants,
        },
      });
      p = { pipeline, id: this.#pipelines.size, layouts: [] };
      this.#pipelines.set(key, p);
    }
    return p;
  }

  #layout(p: CachedPipeline, group: number): GPUBindGroupLayout {
    return p.layouts[group] ??= p.pipeline.getBindGroupLayout(group);
  }

  /** The bind group under `key`, created by `make` when absent (least recently used out). */
  #group(key: string, make: () => GPUBindGroup): GPUBindGroup {
    const found = this.#groups.get(key);
    if (found) {
      this.#groupHits++;
      this.#groups.delete(key);
      this.#groups.set(key, found);
      return found;
    }
    this.#groupMisses++;
    if (this.#groups.size >= this.#groupEntries) {
      this.#groups.delete(this.#groups.keys().next().value!);
    }
    const g = make();
    this.#groups.set(key, g);
    return g;
  }

  #resourceId(h: object): number {
    const id = this.#resourceIds.get(h);
    if (id === undefined) throw new Error("internal: a bound resource does not come from the pool");
    return id;
  }

  /**
   * Compiles a kernel now and rejects with a {@link WGSLCompileError} showing the offending
   * WGSL lines if it does not compile.
   */
  async compile(
    kernel: string,
    source = kernelSource(kernel),
    constants?: Record<string, number>,
    entryPoint = "main",
  ): Promise<void> {
    this.#check();
    // Capture the validation errors of this check so they do not surface later as
    // uncaptured errors of an unrelated read.
    this.gpu.pushErrorScope("validation");
    let failure: WGSLCompileError | null = null;
    try {
      const module = this.gpu.createShaderModule({ label: kernel, code: source });
      const info = await module.getCompilationInfo();
      const errs = info.messages.filter((x) => x.type === "error");
      if (errs.length > 0) {
        failure = formatCompileError(kernel, source, errs);
      } else {
        try {
          await this.gpu.createComputePipelineAsync({
            label: kernel,
            layout: "auto",
            compute: { module, entryPoint, constants },
          });
        } catch (e) {
          failure = new WGSLCompileError(kernel, (e as Error).message);
        }
      }
    } finally {
      await this.gpu.popErrorScope();
    }
    if (failure) throw failure;
  }

  /** Encodes the copy of `t` into the pooled texture of `block`. */
  protected override stageTexture(t: Tensor, block: Block<WebGPUHandle>): void {
    this.#check();
    const tex = (block.handle as PooledTexture).texture;
    this.#endPass();
    const enc = this.#enc();
    const buffer = t.block.handle as GPUBuffer;
    const fb = this.#floatBytes;
    const fullRows = Math.floor(t.size / TEXTURE_ROW_FLOATS);
    const restTexels = (t.size % TEXTURE_ROW_FLOATS) / 4;
    if (fullRows > 0) {
      enc.copyBufferToTexture(
        { buffer, bytesPerRow: TEXTURE_ROW_FLOATS * fb, rowsPerImage: fullRows },
        { texture: tex },
        [TEXTURE_ROW_TEXELS, fullRows],
      );
    }
    if (restTexels > 0) {
      enc.copyBufferToTexture(
        { buffer, offset: fullRows * TEXTURE_ROW_FLOATS * fb },
        { texture: tex, origin: [0, fullRows] },
        [restTexels, 1],
      );
    }
    if (++this.#pending >= this.#batchSize) this.#submit();
  }

  /**
   * Validates the call and records it into the open compute pass (skipped when a workgroup
   * count is 0); submits the batch when it is full.
   */
  override dispatch(call: KernelCall): void {
    this.#check();
    const prep = this.prepare(call);
    if (!prep) return;
    const [x, y = 1, z = 1] = call.workgroups;
    const p = this.#pipeline(call, prep.key, prep.source);
    const pipeline = p.pipeline;
    let key = `${p.id}|b`;
    for (const t of call.bindings) {
      key += `|${this.#resourceId(t.block.handle as GPUBuffer)}:${alignedSize(t.bytes)}`;
    }
    const groups: GPUBindGroup[] = [
      this.#group(key, () =>
        this.gpu.createBindGroup({
          layout: this.#layout(p, 0),
          entries: call.bindings.map((t, i) => ({
            binding: i,
            resource: { buffer: t.block.handle as GPUBuffer, size: alignedSize(t.bytes) },
          })),
        })),
    ];
    if (prep.params) {
      const { entry, created } = prep.params;
      const ub = entry.resource.handle as GPUBuffer;
      if (created) this.gpu.queue.writeBuffer(ub, 0, entry.bytes);
      entry.group ??= this.gpu.createBindGroup({
        layout: this.#layout(p, 1),
        entries: [{ binding: 0, resource: { buffer: ub, size: entry.bytes.byteLength } }],
      });
      groups.push(entry.group as GPUBindGroup);
    }
    if (call.textures && call.textures.length > 0) {
      if (!call.params) {
        let empty = this.#emptyGroups.get(pipeline);
        if (!empty) {
          empty = this.gpu.createBindGroup({ layout: this.#layout(p, 1), entries: [] });
          this.#emptyGroups.set(pipeline, empty);
        }
        groups.push(empty);
      }
      const views = call.textures.map((tex) => tex.handle as PooledTexture);
      const tkey = `${p.id}|t|${views.map((v) => this.#resourceId(v)).join("|")}`;
      groups.push(this.#group(tkey, () =>
        this.gpu.createBindGroup({
          layout: this.#layout(p, 2),
          entries: views.map((v, i) => ({ binding: i, resource: v.view })),
        })));
    }
    const prof = this.#profile;
    if (prof && prof.names.length + 2 > PROFILE_SLOTS) this.#submit();
    if (prof) {
      // One pass per dispatch so each gets its own begin/end timestamps.
      this.#endPass();
      const i = prof.names.length;
      prof.names.push(call.kernel);
      this.#pass = this.#enc().beginComputePass({
        timestampWrites: {
          querySet: prof.querySet,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        },
      });
    }
    const pass = this.#computePass();
    pass.setPipeline(pipeline);
    groups.forEach((g, i) => pass.setBindGroup(i, g));
    pass.dispatchWorkgroups(x, y, z);
    if (prof) this.#endPass();
    this.dispatches++;
    if (++this.#pending >= this.#batchSize) this.#submit();
  }

  /** Fills `t` with `value` (a buffer clear for zero, otherwise a write). */
  override fill(t: Tensor, value: number): void {
    this.#check();
    if (value === 0 || (t.dtype === "f32" && Object.is(value, 0))) {
      this.#endPass();
      this.#enc().clearBuffer(t.block.handle as GPUBuffer, 0, alignedSize(t.bytes));
      this.#pending++;
      return;
    }
    const data = t.dtype === "i32"
      ? new Int32Array(t.size).fill(value)
      : new Float32Array(t.size).fill(value);
    this.write(t, data);
  }

  /** Bytes of one element of a staged texture (the device's float storage). */
  get #floatBytes(): number {
    return this.floatType === "f16" ? 2 : 4;
  }

  /**
   * Writes `data` into `t` through the queue, after submitting pending commands. Throws on a
   * length mismatch.
   */
  override write(t: Tensor, data: Float32Array | Int32Array): void {
    this.#check();
    if (data.length !== t.size) {
      throw new Error(`write "${t.name}": ${data.length} values for ${t.size} elements`);
    }
    // Pending commands may still use this pooled buffer's previous content: submit them
    // first so the queue orders the write after them.
    if (this.#pending > 0) this.#submit();
    if (t.dtype === "f16") {
      // Narrowed on the host (round to nearest even), padded to whole 4-byte words.
      const half = new Float16Array(Math.ceil(t.size / 2) * 2);
      half.set(data);
      this.gpu.queue.writeBuffer(t.block.handle as GPUBuffer, 0, half);
      return;
    }
    this.gpu.queue.writeBuffer(t.block.handle as GPUBuffer, 0, data as Float32Array<ArrayBuffer>);
  }

  /** Encodes a copy of `count` elements. Throws when out of bounds. */
  override copy(
    src: Tensor,
    srcOffset: number,
    dst: Tensor,
    dstOffset: number,
    count: number,
  ): void {
    this.#check();
    this.checkCopy(src, srcOffset, dst, dstOffset, count);
    if (count === 0) return;
    this.#endPass();
    const eb = src.dtype === "f16" ? 2 : 4;
    // An f16 copy ending at the destination's end may round up to a whole word: the pool's
    // buffers are padded, and nothing else lives in them (checkCopy refused the rest).
    const bytes = alignedSize(count * eb);
    this.#enc().copyBufferToBuffer(
      src.block.handle as GPUBuffer,
      srcOffset * eb,
      dst.block.handle as GPUBuffer,
      dstOffset * eb,
      bytes,
    );
    if (++this.#pending >= this.#batchSize) this.#submit();
  }

  /** Throws errors WebGPU reported asynchronously, and {@link DeviceLostError}. */
  protected override beforeRead(): void {
    this.#raisePending();
  }

  /**
   * Submits pending work and reads `t` back through `staging`. Throws errors WebGPU reported
   * asynchronously, and {@link DeviceLostError} when the device is lost.
   */
  protected override async readVia(
    t: Tensor,
    staging: Resource<WebGPUHandle>,
  ): Promise<Float32Array | Int32Array> {
    const size = alignedSize(t.bytes);
    const buf = staging.handle as GPUBuffer;
    this.#endPass();
    this.#enc().copyBufferToBuffer(t.block.handle as GPUBuffer, 0, buf, 0, size);
    this.#pending++;
    this.#submit();
    try {
      await this.#waitOrLost(buf.mapAsync(GPUMapMode.READ, 0, size));
    } catch (e) {
      // An asynchronous WebGPU error (e.g. a kernel that does not compile) explains why.
      await this.#settle();
      this.#raisePending();
      throw e;
    }
    const bytes = buf.getMappedRange(0, size).slice(0, t.bytes);
    buf.unmap();
    await this.#collectProfile();
    await this.#settle();
    this.#raisePending();
    return t.dtype === "i32"
      ? new Int32Array(bytes)
      : t.dtype === "f16"
      ? Float32Array.from(new Float16Array(bytes))
      : new Float32Array(bytes);
  }

  /**
   * Maps `staging` for writing (after submitting pending work), fills it with `data`, unmaps it
   * and submits its copy into `t`. Throws
   * errors WebGPU reported asynchronously, and {@link DeviceLostError}.
   */
  protected override async uploadVia(
    t: Tensor,
    data: Float32Array | Int32Array | null,
    staging: Resource<WebGPUHandle>,
  ): Promise<void> {
    this.#check();
    if (!data || data.length !== t.size) {
      throw new Error(`upload "${t.name}": ${data?.length ?? 0} values for ${t.size} elements`);
    }
    const size = alignedSize(t.bytes);
    const buf = staging.handle as GPUBuffer;
    this.#submit();
    await this.#waitOrLost(buf.mapAsync(GPUMapMode.WRITE, 0, size));
    const range = buf.getMappedRange(0, size);
    if (data instanceof Int32Array) new Int32Array(range, 0, data.length).set(data);
    else if (t.dtype === "f16") new Float16Array(range, 0, data.length).set(data); // host copies hold f16 widened
    else new Float32Array(range, 0, data.length).set(data);
    buf.unmap();
    this.#endPass();
    this.#enc().copyBufferToBuffer(buf, 0, t.block.handle as GPUBuffer, 0, size);
    // submitted alone: the next upload through this pooled buffer then waits for this copy
    // only, not for the work encoded after it
    this.#pending++;
    this.#submit();
  }

  /**
   * Submits pending work and waits for it. Throws errors WebGPU reported asynchronously, and
   * {@link DeviceLostError} when the device is lost.
   */
  override async sync(): Promise<void> {
    this.#check();
    this.#submit();
    await this.#waitOrLost(this.gpu.queue.onSubmittedWorkDone());
    await this.#collectProfile();
    await this.#settle();
    this.#raisePending();
  }

  /** Per-kernel GPU time collected so far (needs `profile: true`), slowest first. */
  profileReport(): KernelProfile[] {
    return [...(this.#profile?.totals.values() ?? [])].sort((a, b) => b.ms - a.ms);
  }

  /** Clears the per-kernel profile. */
  resetProfile(): void {
    this.#profile?.totals.clear();
  }

  /** Releases the pool (buffers, textures, parameters) and destroys the GPU device. Idempotent. */
  override destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#pass?.end();
    this.#pass = null;
    this.#encoder = null;
    this.params.clear();
    this.allocator.releaseCached();
    this.#groups.clear();
    this.gpu.destroy();
  }

  /** Waits for pending shader compilation checks and lets error callbacks run. */
  async #settle(): Promise<void> {
    await Promise.all(this.#compileChecks.splice(0));
    await new Promise((r) => setTimeout(r, 0));
  }

  async #collectProfile(): Promise<void> {
    const prof = this.#profile;
    if (!prof || prof.names.length === 0) return;
    this.#submit();
    const n = prof.names.length;
    const names = prof.names.splice(0);
    const enc = this.gpu.createCommandEncoder();
    enc.resolveQuerySet(prof.querySet, 0, 2 * n, prof.resolve, 0);
    const staging = this.gpu.createBuffer({
      size: 2 * n * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    enc.copyBufferToBuffer(prof.resolve, 0, staging, 0, 2 * n * 8);
    this.gpu.queue.submit([enc.finish()]);
    await this.#waitOrLost(staging.mapAsync(GPUMapMode.READ));
    const ts = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    names.forEach((k, i) => {
      const ms = Number(ts[2 * i + 1] - ts[2 * i]) / 1e6;
      const e = prof.totals.get(k) ?? { kernel: k, calls: 0, ms: 0 };
      e.calls++;
      e.ms += ms > 0 && ms < 1e7 ? ms : 0;
      prof.totals.set(k, e);
    });
  }

  async #waitOrLost<T>(p: Promise<T>): Promise<T> {
    const lost = this.gpu.lost.then((info) => {
      throw new DeviceLostError(
        `the WebGPU device was lost while waiting (${info.reason}): ${info.message}`,
      );
    });
    return await Promise.race([p, lost]);
  }

  #enc(): GPUCommandEncoder {
    return this.#encoder ??= this.gpu.createCommandEncoder();
  }

  #computePass(): GPUComputePassEncoder {
    return this.#pass ??= this.#enc().beginComputePass();
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = null;
  }

  #submit(): void {
    this.#endPass();
    if (this.#encoder) {
      this.gpu.queue.submit([this.#encoder.finish()]);
      this.submits++;
      this.#encoder = null;
    }
    this.#pending = 0;
  }
}

/**
 * Throws a {@link WebGPUUnavailableError} naming the feature unless an adapter with
 * `features` (described as `adapter`) has `shader-f16`, which f16 storage needs.
 */
export function requireHalfFeature(
  features: { has(name: string): boolean },
  adapter: string,
): void {
  if (features.has("shader-f16")) return;
  throw new WebGPUUnavailableError(
    `--dtype f16 needs the WebGPU adapter feature "shader-f16", which this adapter ` +
      `(${adapter}) lacks. Train in f32 (--dtype f32), plan f16 on the meta device ` +
      `(--device meta --dtype f16), or use an adapter with shader-f16 (Mesa lavapipe has it: ` +
      `${INSTALL_HINT})`,
  );
}

function alignedSize(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

function formatCompileError(
  kernel: string,
  code: string,
  errs: readonly GPUCompilationMessage[],
): WGSLCompileError {
  const lines = code.split("\n");
  const parts = errs.map((e) => {
    const ln = e.lineNum;
    const from = Math.max(1, ln - 2);
    const to = Math.min(lines.length, ln + 2);
    const ctx: string[] = [];
    for (let i = from; i <= to; i++) {
      ctx.push(`${i === ln ? ">" : " "} ${String(i).padStart(4)} | ${lines[i - 1]}`);
      if (i === ln) ctx.push(`       | ${" ".repeat(Math.max(0, e.linePos - 1))}^`);
    }
    const msg = e.message.trim().split("\n")[0];
    return `line ${ln}:${e.linePos}: ${msg}\n${ctx.join("\n")}`;
  });
  return new WGSLCompileError(kernel, parts.join("\n\n"));
}

/** True when `info` describes SwiftShader (Chromium's software Vulkan/WebGPU adapter). */
export function isSwiftShader(info: GPUAdapterInfo): boolean {
  return /swiftshader/i.test(
    `${info.vendor} ${info.architecture} ${info.device} ${info.description}`,
  );
}
