/**
 * Host tensors: a device tensor's data kept in host memory (checkpoint offload).
 *
 * `device.toHost(t)` copies a tensor through a pooled mappable `readback` buffer into a
 * Float32Array / Int32Array the runtime owns, and counts its bytes under the allocator's
 * `host` tag (outside the device's live bytes, peak and budget). `device.fromHost(h, opts)`
 * uploads it back into a new device tensor. On the meta device a host tensor has the same
 * shape and bytes and no data, so plans at full scale never hold the bytes they count.
 */

import type { HostBlock } from "./allocator.ts";
import type { DType } from "./dtype.ts";

/** A tensor's data in host memory, counted under the `host` tag until disposed. */
export class HostTensor {
  #block: HostBlock;
  #data: Float32Array | Int32Array | null;
  #release: (b: HostBlock) => void;
  #disposed = false;

  /**
   * Devices create host tensors (`device.toHost`); code above the device does not call this.
   * @param shape Dimensions of the tensor it copies.
   * @param dtype Element type.
   * @param block The host accounting block (bytes = the device tensor's bytes).
   * @param data The values (null on the meta device).
   * @param release Stops counting the block (called once, by {@link dispose}).
   */
  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    block: HostBlock,
    data: Float32Array | Int32Array | null,
    release: (b: HostBlock) => void,
  ) {
    this.#block = block;
    this.#data = data;
    this.#release = release;
  }

  /** Name given at the copy (for reports). */
  get name(): string {
    return this.#block.name;
  }

  /** Bytes counted on the host: the device tensor's accounted bytes. */
  get bytes(): number {
    return this.#block.bytes;
  }

  /** The values (null on the meta device). Throws after {@link dispose}. */
  get data(): Float32Array | Int32Array | null {
    if (this.#disposed) {
      throw new Error(
        `host copy "${this.name}" [${this.shape.join(", ")}] was used after dispose()`,
      );
    }
    return this.#data;
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Drops the values and stops counting their bytes. Disposing twice is an error. */
  dispose(): void {
    if (this.#disposed) throw new Error(`host copy "${this.name}" was already disposed`);
    this.#disposed = true;
    this.#data = null;
    this.#release(this.#block);
  }
}
