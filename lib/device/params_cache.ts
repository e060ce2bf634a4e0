/**
 * Kernel parameters cached by content: one uniform buffer per distinct (pipeline, parameter
 * bytes), reused by every dispatch with the same parameters.
 *
 * A training step dispatches the same kernels with the same shapes step after step, so almost
 * every dispatch finds its parameters already on the device: no upload, no new uniform buffer
 * and no new bind group per dispatch (objects WebGPU frees only when the garbage collector
 * gets to them, which made host memory climb over the first hundreds of steps). Parameters
 * that change every step (AdamW's bias corrections) take a new entry and push out the least
 * recently used one, whose buffer goes back to the pool.
 *
 * The buffers come from the device's {@link Allocator} (`uniform` resources: reserved, never
 * live), and both devices run this same cache, so the meta device reserves the same bytes.
 */

import type { Allocator, Resource } from "./allocator.ts";

/** One cached parameter block. */
export interface ParamsEntry<H = unknown> {
  /** The uniform buffer (null on meta). */
  readonly resource: Resource<H>;
  /** The parameter bytes it holds. */
  readonly bytes: ArrayBuffer;
  /** The device's bind group for the entry's pipeline, created on first use (WebGPU). */
  group: unknown;
}

/**
 * Default number of entries: twice the dispatches of one submitted batch (it must exceed them),
 * and several times the distinct parameter blocks of a training step (about 60 for the tiny
 * presets, whatever S and M).
 */
export const PARAMS_CACHE_ENTRIES = 512;

/** LRU cache of parameter blocks over an allocator's `uniform` resources. */
export class ParamsCache<H = unknown> {
  #entries = new Map<string, ParamsEntry<H>>();
  #allocator: Allocator<H>;
  #capacity: number;
  /** Lookups served by an existing entry. */
  hits = 0;
  /** Lookups that created an entry. */
  misses = 0;

  /**
   * A cache of at most `capacity` entries. An entry pushed out may be reused at once, so
   * `capacity` must exceed the dispatches a device records before it submits them.
   */
  constructor(allocator: Allocator<H>, capacity = PARAMS_CACHE_ENTRIES) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new Error(`params cache capacity must be a positive integer, got ${capacity}`);
    }
    this.#allocator = allocator;
    this.#capacity = capacity;
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The entry for the parameter block under `pipelineKey`; `created` is true when the entry is new and its
   * buffer must be written.
   */
  get(pipelineKey: string, params: ParamsBlock): { entry: ParamsEntry<H>; created: boolean } {
    const key = `${pipelineKey}\u0001${params.contentKey()}`;
    const found = this.#entries.get(key);
    if (found) {
      this.hits++;
      this.#entries.delete(key); // move to the most recently used end
      this.#entries.set(key, found);
      return { entry: found, created: false };
    }
    this.misses++;
    if (this.#entries.size >= this.#capacity) {
      const [oldKey, old] = this.#entries.entries().next().value!;
      this.#entries.delete(oldKey);
      this.#allocator.release(old.resource);
    }
    const bytes = params.bytes();
    const entry: ParamsEntry<H> = {
      resource: this.#allocator.acquire("uniform", bytes.byteLength),
      bytes,
      group: null,
    };
    this.#entries.set(key, entry);
    return { entry, created: true };
  }

  /** Drops every entry; their buffers go back to the pool. */
  clear(): void {
    for (const e of this.#entries.values()) this.#allocator.release(e.resource);
    this.#entries.clear();
  }
}

/** What the cache needs of a parameter block (a {@link Params} from kernel_source.ts). */
export interface ParamsBlock {
  /** A string equal for two blocks exactly when their bytes are equal. */
  contentKey(): string;
  /** The bytes to upload. */
  bytes(): ArrayBuffer;
}

/** The bytes as a short string (two bytes per character); parameter blocks are 16-byte multiples. */
export function contentKey(bytes: ArrayBuffer | ArrayBufferView): string {
  const u16 = ArrayBuffer.isView(bytes)
    ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1)
    : new Uint16Array(bytes, 0, bytes.byteLength >> 1);
  let s = "";
  // fromCharCode over slices: far cheaper than one concatenation per character
  for (let i = 0; i < u16.length; i += 4096) {
    s += String.fromCharCode.apply(null, u16.subarray(i, i + 4096) as unknown as number[]);
  }
  return s;
}
