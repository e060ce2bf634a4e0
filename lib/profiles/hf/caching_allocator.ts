/**
 * A model of PyTorch's CUDA caching allocator (`c10/cuda/CUDACachingAllocator.cpp`,
 * `DeviceCachingAllocator`, default settings: one stream, no `max_split_size_mb`, no
 * expandable segments), fed with the meta device's allocations, so a plan can say what
 * `torch.cuda.max_memory_allocated()` and `max_memory_reserved()` would report and when
 * `cudaMalloc` would fail.
 *
 * The rules, as in the source:
 * - every request is rounded up to a multiple of 512 bytes (`round_size`, `kMinBlockSize`);
 * - requests of at most 1 MiB (`kSmallSize`) come from the small pool, whose segments are
 *   2 MiB (`kSmallBuffer`); larger requests come from the large pool, whose new segments are
 *   20 MiB (`kLargeBuffer`) for requests below 10 MiB (`kMinLargeAlloc`) and the request
 *   rounded up to 2 MiB (`kRoundLarge`) above (`get_allocation_size`);
 * - a request takes the smallest free block of its pool that fits (`get_free_block`, best fit
 *   ordered by size then address); the block is split when what remains is at least 512 bytes
 *   (small pool) or more than 1 MiB (large pool, `should_split`), otherwise the whole block is
 *   handed out and counted as allocated;
 * - a freed block merges with free neighbours of its segment (`free_block`,
 *   `try_merge_blocks`); segments stay reserved;
 * - when a new segment would pass the device capacity, every cached segment that is entirely
 *   free is released (`release_cached_blocks`) and the segment is tried again; then the
 *   request fails (PyTorch's "CUDA out of memory").
 *
 * Fragmentation is therefore modelled, not bounded: it is what the best-fit and split rules
 * leave free inside reserved segments (reserved − allocated), for the exact sequence of
 * allocations and frees the step makes; a request fails when no free piece fits it and no new
 * segment fits the capacity. Not modelled: several streams,
 * `max_split_size_mb`, `expandable_segments`, `garbage_collection_threshold`, and the CUDA
 * context and kernels' own memory outside the allocator (give the budget net of them).
 */

import type { AllocationObserver, Allocator, Block } from "../../device/allocator.ts";
import { OutOfMemoryError } from "../../device/errors.ts";

/** `kMinBlockSize`: all sizes are rounded to at least 512 bytes. */
const MIN_BLOCK_SIZE = 512;
/** `kSmallSize`: the largest "small" allocation, 1 MiB. */
const SMALL_SIZE = 1 << 20;
/** `kSmallBuffer`: small allocations are packed in 2 MiB segments. */
export const SMALL_BUFFER = 2 << 20;
/** `kLargeBuffer`: requests between 1 and 10 MiB get a 20 MiB segment. */
export const LARGE_BUFFER = 20 << 20;
/** `kMinLargeAlloc`: requests from 10 MiB get a segment of their own size. */
const MIN_LARGE_ALLOC = 10 << 20;
/** `kRoundLarge`: large segments are rounded up to 2 MiB. */
const ROUND_LARGE = 2 << 20;

/** `round_size`: the block size a request of `bytes` asks for. */
export function roundSize(bytes: number): number {
  if (bytes < MIN_BLOCK_SIZE) return MIN_BLOCK_SIZE;
  return MIN_BLOCK_SIZE * Math.ceil(bytes / MIN_BLOCK_SIZE);
}

/** `get_allocation_size`: the segment `cudaMalloc`ed for a rounded request. */
export function allocationSize(size: number): number {
  if (size <= SMALL_SIZE) return SMALL_BUFFER;
  if (size < MIN_LARGE_ALLOC) return LARGE_BUFFER;
  return ROUND_LARGE * Math.ceil(size / ROUND_LARGE);
}

interface Segment {
  readonly id: number;
  readonly size: number;
  readonly small: boolean;
}

interface CBlock {
  segment: Segment;
  offset: number;
  size: number;
  allocated: boolean;
  prev: CBlock | null;
  next: CBlock | null;
}

/** Figures of the model, in bytes (PyTorch's `memory_stats()` names in brackets). */
export interface CachingStats {
  /** Block bytes handed out now (`allocated_bytes.all.current`). */
  allocatedBytes: number;
  /** Peak of {@link allocatedBytes} (`allocated_bytes.all.peak`, `max_memory_allocated`). */
  peakAllocatedBytes: number;
  /** Segment bytes held now (`reserved_bytes.all.current`). */
  reservedBytes: number;
  /** Peak of {@link reservedBytes} (`reserved_bytes.all.peak`, `max_memory_reserved`). */
  peakReservedBytes: number;
  /** Requested bytes now (`requested_bytes.all.current`). */
  requestedBytes: number;
  /** Segments `cudaMalloc`ed so far (`segment.all.allocated`). */
  segmentsAllocated: number;
  /** Times every cached free segment had to be released to make room (`num_alloc_retries`). */
  allocRetries: number;
}

/** The free blocks of one pool, ordered by (size, segment, offset) like `BlockComparatorSize`. */
class FreeList {
  readonly blocks: CBlock[] = [];

  static #less(a: CBlock, b: CBlock): boolean {
    if (a.size !== b.size) return a.size < b.size;
    if (a.segment.id !== b.segment.id) return a.segment.id < b.segment.id;
    return a.offset < b.offset;
  }

  /** Index of the first block not less than `key`. */
  #lowerBound(size: number, segment = -1, offset = -1): number {
    let lo = 0;
    let hi = this.blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const b = this.blocks[mid];
      const less = b.size !== size
        ? b.size < size
        : b.segment.id !== segment
        ? b.segment.id < segment
        : b.offset < offset;
      if (less) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(b: CBlock): void {
    const i = this.#lowerBound(b.size, b.segment.id, b.offset);
    this.blocks.splice(i, 0, b);
  }

  remove(b: CBlock): void {
    const i = this.#lowerBound(b.size, b.segment.id, b.offset);
    if (this.blocks[i] !== b) throw new Error("caching allocator model: free list out of order");
    this.blocks.splice(i, 1);
  }

  /** The smallest free block of at least `size` bytes (best fit), removed from the list. */
  takeBestFit(size: number): CBlock | null {
    const i = this.#lowerBound(size);
    if (i >= this.blocks.length) return null;
    const [b] = this.blocks.splice(i, 1);
    return b;
  }

  /** Sanity: the list is sorted. */
  sorted(): boolean {
    return this.blocks.every((b, i) => i === 0 || FreeList.#less(this.blocks[i - 1], b));
  }
}

/**
 * PyTorch's caching allocator over a device of `capacity` bytes. Use it directly
 * ({@link malloc} / {@link free}) or attach it to the meta device's allocator with
 * {@link observe}: then every tensor allocation goes through it, and an allocation it cannot
 * serve within the capacity throws {@link OutOfMemoryError} as PyTorch would.
 *
 * @example
 * ```ts
 * import { CachingAllocatorModel } from "./caching_allocator.ts";
 *
 * const cuda = new CachingAllocatorModel(80 * 2 ** 30);
 * cuda.malloc(1, 1000); // a 1,024-byte block of a 2 MiB small segment
 * cuda.malloc(2, 5 << 20); // a 20 MiB large segment, split: 5 MiB allocated
 * console.log(cuda.stats().allocatedBytes, cuda.stats().reservedBytes); // 5243904 23068672
 * ```
 */
export class CachingAllocatorModel implements AllocationObserver {
  readonly #small = new FreeList();
  readonly #large = new FreeList();
  readonly #live = new Map<number, CBlock>();
  readonly #requested = new Map<number, number>();
  readonly #segments = new Set<Segment>();
  #nextSegment = 1;
  #allocated = 0;
  #peakAllocated = 0;
  #reserved = 0;
  #peakReserved = 0;
  #requestedBytes = 0;
  #segmentsAllocated = 0;
  #retries = 0;

  /**
   * An empty allocator (no segment reserved yet).
   * @param capacity Bytes the allocator may reserve (the GPU's memory net of the CUDA context);
   *   `Infinity` = no limit.
   */
  constructor(
    /** Bytes the allocator may reserve. */
    readonly capacity: number,
  ) {}

  /**
   * Serves request `id` of `bytes` bytes. Returns the block size counted as allocated, or
   * `null` when no segment can be reserved within the capacity (PyTorch raises
   * `OutOfMemoryError` there).
   */
  malloc(id: number, bytes: number): number | null {
    if (this.#live.has(id)) throw new Error(`caching allocator model: request ${id} is live`);
    const size = roundSize(bytes);
    const small = size <= SMALL_SIZE;
    const pool = small ? this.#small : this.#large;
    let block = pool.takeBestFit(size);
    if (!block) {
      const segSize = allocationSize(size);
      if (this.#reserved + segSize > this.capacity) {
        this.#releaseCached();
        this.#retries++;
        if (this.#reserved + segSize > this.capacity) return null;
      }
      const segment: Segment = { id: this.#nextSegment++, size: segSize, small };
      this.#segments.add(segment);
      this.#segmentsAllocated++;
      this.#reserved += segSize;
      block = { segment, offset: 0, size: segSize, allocated: false, prev: null, next: null };
    }
    const remaining = block.size - size;
    if (small ? remaining >= MIN_BLOCK_SIZE : remaining > SMALL_SIZE) {
      const rest: CBlock = {
        segment: block.segment,
        offset: block.offset + size,
        size: remaining,
        allocated: false,
        prev: block,
        next: block.next,
      };
      if (block.next) block.next.prev = rest;
      block.next = rest;
      block.size = size;
      pool.insert(rest);
    }
    block.allocated = true;
    this.#live.set(id, block);
    this.#requested.set(id, bytes);
    this.#requestedBytes += bytes;
    this.#allocated += block.size;
    this.#peakAllocated = Math.max(this.#peakAllocated, this.#allocated);
    this.#peakReserved = Math.max(this.#peakReserved, this.#reserved);
    return block.size;
  }

  /** Frees request `id`; its block merges with free neighbours of its segment. */
  free(id: number): void {
    const block = this.#live.get(id);
    if (!block) throw new Error(`caching allocator model: request ${id} is not live`);
    this.#live.delete(id);
    this.#requestedBytes -= this.#requested.get(id)!;
    this.#requested.delete(id);
    this.#allocated -= block.size;
    block.allocated = false;
    const pool = block.segment.small ? this.#small : this.#large;
    for (const side of ["prev", "next"] as const) {
      const n = block[side];
      if (!n || n.allocated) continue;
      pool.remove(n);
      if (side === "prev") {
        block.offset = n.offset;
        block.prev = n.prev;
        if (n.prev) n.prev.next = block;
      } else {
        block.next = n.next;
        if (n.next) n.next.prev = block;
      }
      block.size += n.size;
    }
    pool.insert(block);
  }

  /** `release_cached_blocks`: gives back every segment that is one free block. */
  #releaseCached(): void {
    for (const pool of [this.#small, this.#large]) {
      for (const b of [...pool.blocks]) {
        if (b.prev || b.next) continue;
        pool.remove(b);
        this.#segments.delete(b.segment);
        this.#reserved -= b.segment.size;
      }
    }
  }

  /** The current figures. */
  stats(): CachingStats {
    return {
      allocatedBytes: this.#allocated,
      peakAllocatedBytes: this.#peakAllocated,
      reservedBytes: this.#reserved,
      peakReservedBytes: this.#peakReserved,
      requestedBytes: this.#requestedBytes,
      segmentsAllocated: this.#segmentsAllocated,
      allocRetries: this.#retries,
    };
  }

  /** True when the free lists are ordered (a self-check for tests). */
  consistent(): boolean {
    return this.#small.sorted() && this.#large.sorted();
  }

  /** Serves a tensor allocation of the observed allocator (see {@link observe}). */
  onAlloc(block: Block<unknown>, allocator: Allocator<unknown>): void {
    if (this.malloc(block.id, block.bytes) !== null) return;
    throw new OutOfMemoryError(
      block.bytes,
      block.tag,
      this.capacity,
      allocator.stats().liveByTag,
      allocator.largest(5),
      `the device memory PyTorch's caching allocator can reserve (${
        (this.#reserved / 2 ** 30).toFixed(2)
      } GiB in segments, ${(this.#allocated / 2 ** 30).toFixed(2)} GiB of blocks allocated)`,
    );
  }

  /** Frees a tensor of the observed allocator (one allocated before {@link observe}: ignored). */
  onFree(block: Block<unknown>): void {
    if (this.#live.has(block.id)) this.free(block.id);
  }

  /**
   * Attaches this model to `allocator`: every later tensor allocation and free goes through
   * it. Returns the function that detaches it.
   */
  observe(allocator: Allocator<unknown>): () => void {
    return allocator.observe(this);
  }
}
