/**
 * Tensors: a shape, an element type, a memory tag and a pool block, with explicit
 * ownership. A tensor is freed by `dispose()` (or by the scope that created it); a reshape
 * shares the block and keeps it alive until every view is disposed.
 */

import type { Block, Tag } from "./allocator.ts";
import type { DType } from "./dtype.ts";
import { numel } from "./dtype.ts";

/** Shared storage of a tensor and its views. */
export interface Storage {
  /** The pool block, shared by every view. */
  block: Block;
  /** Number of undisposed tensors (views) on this storage. */
  refs: number;
  /** Returns the block to the allocator; called when `refs` drops to 0. */
  release(block: Block): void;
}

/** A device tensor. Data lives on the device; read it with `device.read(t)`. */
export class Tensor {
  /** Number of elements (the product of the shape). */
  readonly size: number;
  #storage: Storage;
  #disposed = false;

  /**
   * A tensor on `storage`, adding a reference to it. Devices create tensors
   * (`device.tensor(...)`); code above the device does not call this.
   * @param shape Dimensions, e.g. `[S, d]`.
   * @param dtype Element type.
   * @param storage Block and reference count, shared with the views.
   */
  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    storage: Storage,
  ) {
    this.size = numel(shape);
    this.#storage = storage;
    storage.refs++;
  }

  /** The pool block (for devices and accounting). Throws if disposed. */
  get block(): Block {
    if (this.#disposed) {
      throw new Error(
        `tensor "${this.name}" [${this.shape.join(", ")}] was used after dispose()`,
      );
    }
    return this.#storage.block;
  }

  /** Accounting tag. */
  get tag(): Tag {
    return this.#storage.block.tag;
  }

  /** Name given at allocation (for reports). */
  get name(): string {
    return this.#storage.block.name;
  }

  /** Counted bytes of the underlying block. */
  get bytes(): number {
    return this.#storage.block.bytes;
  }

  /** Allocation id (unique per device). */
  get id(): number {
    return this.#storage.block.id;
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Moves this tensor's bytes (shared with its views) to another accounting tag. */
  retag(tag: Tag, allocatorRetag: (b: Block, tag: Tag) => Block): void {
    this.#storage.block = allocatorRetag(this.block, tag);
  }

  /** A view with another shape of the same number of elements, sharing the storage. */
  reshape(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) {
      throw new Error(
        `cannot reshape "${this.name}" [${this.shape.join(", ")}] (${this.size} elements) ` +
          `to [${shape.join(", ")}] (${numel(shape)} elements)`,
      );
    }
    this.block; // throws when disposed
    return new Tensor(shape, this.dtype, this.#storage);
  }

  /** Release this tensor. The block returns to the pool when its last view is disposed. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (--this.#storage.refs === 0) this.#storage.release(this.#storage.block);
  }

  /** Readable description. */
  toString(): string {
    return `Tensor(${this.name}: ${this.dtype}[${this.shape.join(", ")}], ${this.tag})`;
  }
}

/** Throws a readable error unless `t` has the expected shape (`-1` matches any size). */
export function expectShape(t: Tensor, shape: readonly number[], what = t.name): void {
  const ok = t.shape.length === shape.length && shape.every((d, i) => d === -1 || d === t.shape[i]);
  if (!ok) {
    throw new Error(
      `${what}: expected shape [${shape.map((d) => d === -1 ? "*" : d).join(", ")}], got [${
        t.shape.join(", ")
      }]`,
    );
  }
}
