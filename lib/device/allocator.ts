/**
 * The one allocator under every device: a buffer pool with size-class reuse and exact
 * memory accounting.
 *
 * Accounting counts the bytes each tensor asked for ("live" bytes, what PyTorch calls
 * allocated) per tag, their peak and the per-tag breakdown at that peak. The pool rounds a
 * request up to a size class and reuses freed resources of the same kind and class; the bytes
 * the pool holds (live or cached) are "reserved". The memory budget is checked against live
 * bytes, so a plan made on the meta device and a run on WebGPU hit it at the same allocation.
 *
 * Every byte the device holds is reserved under one {@link ResourceKind}: storage buffers and
 * textures back tensors (live while a tensor uses them), uniform buffers back the kernels'
 * parameters, readback buffers carry reads to the host and upload buffers carry host copies
 * back (all three {@link Allocator.acquire}d by the device, never live). So `reservedBytes` is
 * what the device really holds. Bytes the device keeps in host memory (offloaded checkpoints)
 * are counted apart under {@link HOST_TAG}.
 *
 * The pool never touches the GPU itself: a {@link BufferBackend} creates and destroys the
 * real resources (WebGPU) or nothing (meta), which is why both devices allocate identically.
 */

import { formatBytes } from "./dtype.ts";
import { LeakError, type LiveTensorInfo, OutOfMemoryError, type TagBytes } from "./errors.ts";

/** What each allocation is for. The breakdown tables and charts group by these. */
export const TAGS = [
  "weights",
  "grads",
  "optimizer",
  "checkpoints",
  "activations",
  "workspace",
  "logits",
  "data",
  // ZeRO-3 parameters all-gathered for the layer running (planned ranks, lib/sharding/zero.ts)
  "gathered",
  // collective buffers: all-to-all send copies, gradient reduce buckets (lib/sharding, lib/ops/all_to_all.ts)
  "comm",
] as const;

/** One of {@link TAGS}. */
export type Tag = typeof TAGS[number];

/**
 * The tag of bytes held in host memory for the device (block checkpoints offloaded by the
 * `offload` policy, see `host_tensor.ts`). Host bytes lie outside the device: they are not
 * live bytes, not in the peak or its breakdown, and not checked against the budget; the
 * allocator counts them apart ({@link MemoryStats.hostBytes}, {@link MemoryStats.hostPeakBytes})
 * and records their events in the timeline with this tag.
 */
export const HOST_TAG = "host";

/** {@link HOST_TAG}. */
export type HostTag = typeof HOST_TAG;

/**
 * What a pooled resource is: a storage buffer (tensors), an `rgba32float` texture (staged
 * tensors, see `texture.ts`), a uniform buffer (kernel parameters), a mappable readback
 * buffer (reads, copies to the host) or a mappable upload buffer (host copies brought back,
 * see `host_tensor.ts`). Resources of different kinds are never reused for one another.
 */
export const RESOURCE_KINDS = ["storage", "texture", "uniform", "readback", "upload"] as const;

/** One of {@link RESOURCE_KINDS}. */
export type ResourceKind = typeof RESOURCE_KINDS[number];

/** Reserved bytes per {@link ResourceKind}. */
export type KindBytes = Record<ResourceKind, number>;

/** Creates and destroys the resources behind pool blocks. */
export interface BufferBackend<H> {
  /** A new resource of `kind` holding exactly `sizeClass` bytes. */
  create(sizeClass: number, kind: ResourceKind, tag: Tag | null): H;
  /** Release a resource created by {@link create}. */
  destroy(handle: H, kind: ResourceKind): void;
}

/** A pooled resource acquired outside the tensor accounting (uniform or readback). */
export interface Resource<H = unknown> {
  /** What it is. */
  readonly kind: ResourceKind;
  /** Its bytes (a size class). */
  readonly sizeClass: number;
  /** The backend's resource (null on meta). */
  readonly handle: H;
}

/** One live allocation. */
export interface Block<H = unknown> {
  /** Allocation id, unique per allocator (increasing from 1). */
  readonly id: number;
  /** Requested (accounted) bytes. */
  readonly bytes: number;
  /** Bytes of the pooled resource: `bytes` rounded by {@link sizeClassOf}. */
  readonly sizeClass: number;
  /** What backs the tensor: a storage buffer or a texture. */
  readonly kind: "storage" | "texture";
  /** Accounting tag. */
  readonly tag: Tag;
  /** Name shown in reports and errors. */
  readonly name: string;
  /** The backend's resource (a GPUBuffer or a texture on WebGPU; null on meta). */
  readonly handle: H;
}

/** Bytes held in host memory for the device (see {@link HOST_TAG}). */
export interface HostBlock {
  /** Allocation id, from the same sequence as device blocks. */
  readonly id: number;
  /** Bytes held on the host. */
  readonly bytes: number;
  /** Always {@link HOST_TAG}. */
  readonly tag: HostTag;
  /** Name shown in reports and leak errors. */
  readonly name: string;
}

/** An alloc or free, as recorded in the timeline. */
export interface MemoryEvent {
  /** Number of the event among all recorded events (0-based, never reset). */
  seq: number;
  /** What happened: an allocation, a free, or a move to another tag. */
  kind: "alloc" | "free" | "retag";
  /** Id of the block. */
  id: number;
  /** Accounted bytes of the block. */
  bytes: number;
  /** Tag of the block (the new tag for `retag`; {@link HOST_TAG} for host bytes). */
  tag: Tag | HostTag;
  /** Name of the block. */
  name: string;
  /** The allocator's {@link Allocator.phase} when the event happened. */
  phase: string;
  /** Live (device) bytes right after this event. */
  liveBytes: number;
}

/** A snapshot of the accounting. */
export interface MemoryStats {
  /** Bytes of the live allocations. */
  liveBytes: number;
  /** Bytes of the resources the pool holds, live or cached (in size classes), every kind. */
  reservedBytes: number;
  /** Reserved bytes per resource kind. Sums to `reservedBytes`. */
  reservedByKind: KindBytes;
  /** Peak reserved bytes since creation or the last {@link Allocator.resetPeak}. */
  peakReservedBytes: number;
  /** Peak live bytes since creation or the last {@link Allocator.resetPeak}. */
  peakBytes: number;
  /** Live bytes per tag. */
  liveByTag: TagBytes;
  /** Live bytes per tag at the moment of the peak. Sums to `peakBytes`. */
  peakBreakdown: TagBytes;
  /** The {@link Allocator.phase} when the peak was reached ("" = no phase set). */
  peakPhase: string;
  /**
   * Peak live bytes within each phase since the last {@link Allocator.resetPeak}, by phase
   * label (a phase entered without allocating counts its live bytes on entry).
   */
  phasePeaks: Record<string, number>;
  /** Bytes held in host memory now (tag {@link HOST_TAG}; not in `liveBytes`). */
  hostBytes: number;
  /** Peak host bytes since creation or the last {@link Allocator.resetPeak}. */
  hostPeakBytes: number;
  /** Number of allocations since creation. */
  allocations: number;
  /** Allocations and acquisitions served by a cached resource instead of a new one. */
  poolHits: number;
}

/**
 * The size class a request of `bytes` is rounded to: powers of two from 256 B up to
 * 1 MiB, then multiples of 1 MiB.
 */
export function sizeClassOf(bytes: number): number {
  const MiB = 1 << 20;
  if (bytes <= 256) return 256;
  if (bytes <= MiB) return 2 ** Math.ceil(Math.log2(bytes));
  return Math.ceil(bytes / MiB) * MiB;
}

function zeroTags(): TagBytes {
  return Object.fromEntries(TAGS.map((t) => [t, 0]));
}

function zeroKinds(): KindBytes {
  return { storage: 0, texture: 0, uniform: 0, readback: 0, upload: 0 };
}

/**
 * Sees every tensor allocation and free of an {@link Allocator} (e.g. a model of another
 * framework's allocator, `lib/profiles/hf/caching_allocator.ts`). `onAlloc` runs after the budget
 * check and before the block is live; it may throw {@link OutOfMemoryError} to refuse it.
 */
export interface AllocationObserver {
  /** A block is about to become live. */
  onAlloc(block: Block<unknown>, allocator: Allocator<unknown>): void;
  /** A live block was freed. */
  onFree(block: Block<unknown>, allocator: Allocator<unknown>): void;
}

/** Buffer pool + accounting. One per device. */
export class Allocator<H = unknown> {
  #backend: BufferBackend<H>;
  /** Cached (free) resources per kind and size class. */
  #free: Record<ResourceKind, Map<number, H[]>> = {
    storage: new Map(),
    texture: new Map(),
    uniform: new Map(),
    readback: new Map(),
    upload: new Map(),
  };
  #live = new Map<number, Block<H>>();
  #hostLive = new Map<number, HostBlock>();
  #hostBytes = 0;
  #hostPeak = 0;
  #nextId = 1;
  #seq = 0;
  #liveBytes = 0;
  #reserved = 0;
  #reservedByKind = zeroKinds();
  #peakReserved = 0;
  #peak = 0;
  #liveByTag: TagBytes = zeroTags();
  #peakBreakdown: TagBytes = zeroTags();
  #peakPhase = "";
  #phasePeaks = new Map<string, number>();
  #phase = "";
  #allocations = 0;
  #poolHits = 0;
  #timeline: MemoryEvent[] | null = null;
  #observers: AllocationObserver[] = [];
  /** Budget on live bytes; `Infinity` when unset. */
  budget: number = Infinity;

  /** Label recorded with each timeline event (e.g. "forward", "backward", "optimizer"). */
  get phase(): string {
    return this.#phase;
  }
  /** Enters a phase: its peak starts at the live bytes now. */
  set phase(phase: string) {
    this.#phase = phase;
    this.#bumpPhasePeak();
  }

  /** An allocator whose buffers `backend` creates and destroys. */
  constructor(backend: BufferBackend<H>) {
    this.#backend = backend;
  }

  /**
   * Allocate `bytes` for `tag`, backed by a storage buffer (default) or a texture of the
   * pool. Throws {@link OutOfMemoryError} past the budget.
   */
  alloc(
    bytes: number,
    tag: Tag,
    name: string,
    opts: { kind?: "storage" | "texture" } = {},
  ): Block<H> {
    if (!Number.isFinite(bytes) || bytes < 0) {
      throw new Error(`cannot allocate ${bytes} bytes for "${name}": size must be finite and >= 0`);
    }
    if (!(TAGS as readonly string[]).includes(tag)) {
      throw new Error(`unknown memory tag "${tag}"; use one of: ${TAGS.join(", ")}`);
    }
    if (this.#liveBytes + bytes > this.budget) {
      throw new OutOfMemoryError(bytes, tag, this.budget, { ...this.#liveByTag }, this.largest(5));
    }
    const kind = opts.kind ?? "storage";
    const sizeClass = sizeClassOf(bytes);
    if (this.#observers.length) {
      const probe = { id: this.#nextId, bytes, sizeClass, kind, tag, name, handle: null };
      for (const o of this.#observers) o.onAlloc(probe, this as Allocator<unknown>);
    }
    const handle = this.#take(kind, sizeClass, tag);
    const block: Block<H> = { id: this.#nextId++, bytes, sizeClass, kind, tag, name, handle };
    this.#live.set(block.id, block);
    this.#allocations++;
    this.#liveBytes += bytes;
    this.#liveByTag[tag] += bytes;
    if (this.#liveBytes > this.#peak) {
      this.#peak = this.#liveBytes;
      this.#peakBreakdown = { ...this.#liveByTag };
      this.#peakPhase = this.#phase;
    }
    this.#bumpPhasePeak();
    this.#record("alloc", block);
    return block;
  }

  /**
   * Moves a live block's bytes to another tag (e.g. a block input kept as a recomputation
   * checkpoint). Live and peak totals are unchanged. Returns the updated block.
   */
  retag(block: Block<H>, tag: Tag): Block<H> {
    const live = this.#live.get(block.id);
    if (!live) throw new Error(`cannot retag tensor #${block.id} "${block.name}": it is not live`);
    if (live.tag === tag) return live;
    const moved: Block<H> = { ...live, tag };
    this.#liveByTag[live.tag] -= live.bytes;
    this.#liveByTag[tag] += live.bytes;
    this.#live.set(block.id, moved);
    this.#record("retag", moved);
    return moved;
  }

  /** Return a block to the pool. Freeing twice is an error. */
  free(block: Block<H>): void {
    const live = this.#live.get(block.id);
    if (!live || !this.#live.delete(block.id)) {
      throw new Error(`tensor #${block.id} "${block.name}" was already freed`);
    }
    this.#liveBytes -= live.bytes;
    this.#liveByTag[live.tag] -= live.bytes;
    this.#put(live.kind, live.sizeClass, live.handle);
    this.#record("free", live);
    for (const o of this.#observers) o.onFree(live, this as Allocator<unknown>);
  }

  /** Adds an observer of every later tensor allocation and free; returns a remover. */
  observe(observer: AllocationObserver): () => void {
    this.#observers.push(observer);
    return () => {
      this.#observers = this.#observers.filter((o) => o !== observer);
    };
  }

  /**
   * Counts `bytes` held in host memory for the device (tag {@link HOST_TAG}): outside the
   * live bytes, the peak and the budget; recorded in the timeline. Free with {@link freeHost}.
   */
  allocHost(bytes: number, name: string): HostBlock {
    if (!Number.isFinite(bytes) || bytes < 0) {
      throw new Error(
        `cannot hold ${bytes} host bytes for "${name}": size must be finite and >= 0`,
      );
    }
    const block: HostBlock = { id: this.#nextId++, bytes, tag: HOST_TAG, name };
    this.#hostLive.set(block.id, block);
    this.#hostBytes += bytes;
    if (this.#hostBytes > this.#hostPeak) this.#hostPeak = this.#hostBytes;
    this.#record("alloc", block);
    return block;
  }

  /** Stops counting a {@link HostBlock}. Freeing twice is an error. */
  freeHost(block: HostBlock): void {
    if (!this.#hostLive.delete(block.id)) {
      throw new Error(`host copy #${block.id} "${block.name}" was already freed`);
    }
    this.#hostBytes -= block.bytes;
    this.#record("free", block);
  }

  /** Bytes held in host memory now (see {@link HOST_TAG}). */
  get hostBytes(): number {
    return this.#hostBytes;
  }

  /**
   * A pooled resource of `kind` with at least `bytes` bytes that is not a tensor (a uniform,
   * readback or upload buffer): counted in the reserved bytes, not in the live bytes, the
   * peak or the budget. Give it back with {@link release}.
   */
  acquire(kind: "uniform" | "readback" | "upload", bytes: number): Resource<H> {
    if (!Number.isFinite(bytes) || bytes < 0) {
      throw new Error(`cannot acquire ${bytes} bytes of ${kind}: size must be finite and >= 0`);
    }
    const sizeClass = sizeClassOf(bytes);
    return { kind, sizeClass, handle: this.#take(kind, sizeClass, null) };
  }

  /** Returns a resource from {@link acquire} to the pool. */
  release(r: Resource<H>): void {
    this.#put(r.kind, r.sizeClass, r.handle);
  }

  /** Destroys a resource from {@link acquire} that cannot be reused (e.g. a failed mapping). */
  discard(r: Resource<H>): void {
    this.#backend.destroy(r.handle, r.kind);
    this.#reserved -= r.sizeClass;
    this.#reservedByKind[r.kind] -= r.sizeClass;
  }

  /** Destroy every cached (free) resource; reserved bytes drop to what is in use. */
  releaseCached(): void {
    for (const kind of RESOURCE_KINDS) {
      for (const [cls, list] of this.#free[kind]) {
        for (const h of list) {
          this.#backend.destroy(h, kind);
          this.#reserved -= cls;
          this.#reservedByKind[kind] -= cls;
        }
      }
      this.#free[kind].clear();
    }
  }

  #take(kind: ResourceKind, sizeClass: number, tag: Tag | null): H {
    const cached = this.#free[kind].get(sizeClass);
    if (cached && cached.length > 0) {
      this.#poolHits++;
      return cached.pop()!;
    }
    const handle = this.#backend.create(sizeClass, kind, tag);
    this.#reserved += sizeClass;
    this.#reservedByKind[kind] += sizeClass;
    if (this.#reserved > this.#peakReserved) this.#peakReserved = this.#reserved;
    return handle;
  }

  #put(kind: ResourceKind, sizeClass: number, handle: H): void {
    let list = this.#free[kind].get(sizeClass);
    if (!list) this.#free[kind].set(sizeClass, list = []);
    list.push(handle);
  }

  /** Current figures. */
  stats(): MemoryStats {
    return {
      liveBytes: this.#liveBytes,
      reservedBytes: this.#reserved,
      reservedByKind: { ...this.#reservedByKind },
      peakReservedBytes: this.#peakReserved,
      peakBytes: this.#peak,
      liveByTag: { ...this.#liveByTag },
      peakBreakdown: { ...this.#peakBreakdown },
      peakPhase: this.#peakPhase,
      phasePeaks: Object.fromEntries(this.#phasePeaks),
      hostBytes: this.#hostBytes,
      hostPeakBytes: this.#hostPeak,
      allocations: this.#allocations,
      poolHits: this.#poolHits,
    };
  }

  /** Live bytes right now. */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  /** Peak live bytes since creation or the last {@link resetPeak}. */
  get peakBytes(): number {
    return this.#peak;
  }

  /** Restart peak tracking (live and reserved) from the current figures. */
  resetPeak(): void {
    this.#peak = this.#liveBytes;
    this.#peakReserved = this.#reserved;
    this.#peakBreakdown = { ...this.#liveByTag };
    this.#peakPhase = this.#phase;
    this.#hostPeak = this.#hostBytes;
    this.#phasePeaks.clear();
    this.#bumpPhasePeak();
  }

  #bumpPhasePeak(): void {
    if (this.#liveBytes > (this.#phasePeaks.get(this.#phase) ?? -1)) {
      this.#phasePeaks.set(this.#phase, this.#liveBytes);
    }
  }

  /** The `n` largest live allocations. */
  largest(n: number): LiveTensorInfo[] {
    return [...this.#live.values()]
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, n)
      .map((b) => ({ id: b.id, name: b.name, tag: b.tag, bytes: b.bytes }));
  }

  /**
   * Live allocations whose id is greater than `afterId`, oldest first: device blocks and
   * host copies ({@link HOST_TAG}) alike, so leak checks cover both.
   */
  liveSince(afterId: number): LiveTensorInfo[] {
    return [...this.#live.values(), ...this.#hostLive.values()]
      .filter((b) => b.id > afterId)
      .sort((a, b) => a.id - b.id)
      .map((b) => ({ id: b.id, name: b.name, tag: b.tag, bytes: b.bytes }));
  }

  /** The id the next allocation will get (a marker for {@link liveSince}). */
  get nextId(): number {
    return this.#nextId;
  }

  /** Start (or restart) recording alloc/free events. */
  startTimeline(): void {
    this.#timeline = [];
  }

  /** Stop recording and return the events. */
  stopTimeline(): MemoryEvent[] {
    const t = this.#timeline ?? [];
    this.#timeline = null;
    return t;
  }

  /** The events recorded so far (empty when not recording). */
  get timeline(): readonly MemoryEvent[] {
    return this.#timeline ?? [];
  }

  /**
   * Throws {@link LeakError} if tensors allocated after `marker` (from {@link nextId})
   * are still live.
   */
  assertNoLeaksSince(marker: number): void {
    const leaked = this.liveSince(marker - 1);
    if (leaked.length > 0) {
      throw new LeakError(leaked.reduce((a, t) => a + t.bytes, 0), leaked);
    }
  }

  /** A one-line summary, for logs. */
  summary(): string {
    const s = this.stats();
    const host = s.hostBytes > 0 ? `, host ${formatBytes(s.hostBytes)}` : "";
    return `live ${formatBytes(s.liveBytes)}, peak ${formatBytes(s.peakBytes)}, reserved ${
      formatBytes(s.reservedBytes)
    }${host}`;
  }

  #record(kind: MemoryEvent["kind"], b: Block<H> | HostBlock): void {
    if (!this.#timeline) return;
    this.#timeline.push({
      seq: this.#seq++,
      kind,
      id: b.id,
      bytes: b.bytes,
      tag: b.tag,
      name: b.name,
      phase: this.phase,
      liveBytes: this.#liveBytes,
    });
  }
}
