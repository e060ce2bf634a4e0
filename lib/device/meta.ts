/**
 * The meta device: the same interface as WebGPU with no data and no dispatch.
 *
 * Every allocation and free goes through the same {@link Allocator} in the same order as on
 * WebGPU, so the peak, the breakdown and the timeline are identical for the same code. Floats
 * can be counted as f32, f16 or bf16 to plan the paper's bf16 setups. Reads return NaN (floats)
 * or 0 (integers); code above the device must not branch on data.
 */

import type { Block, Resource } from "./allocator.ts";
import { Device, type DeviceLimits, type KernelCall } from "./device.ts";
import type { FloatCounting } from "./dtype.ts";
import type { Tensor } from "./tensor.ts";

/** Options of a {@link MetaDevice}. */
export interface MetaDeviceOptions {
  /** How floating-point elements are counted (default f32). */
  floats?: FloatCounting;
  /**
   * Device limits to plan for. Default: no binding-size or binding-count limit (a datacenter
   * GPU; multi-tensor kernels then cap their groups themselves); pass a WebGPU device's
   * `limits` to mirror its dispatches exactly.
   */
  limits?: Partial<DeviceLimits>;
  /** Entries of the parameter cache (default as on WebGPU); mirror a WebGPU device's. */
  paramsEntries?: number;
}

/** Runs the code, counts the bytes, computes nothing. */
export class MetaDevice extends Device<null> {
  /** Always `"meta"`. */
  readonly kind = "meta" as const;
  /** Limits to plan for: none (`Infinity`) unless given in the options. */
  readonly limits: DeviceLimits;
  /** Dispatches that would have run. */
  dispatches = 0;

  /** A meta device counting floats as `opts.floats` (default f32). */
  constructor(opts: MetaDeviceOptions = {}) {
    super({ create: () => null, destroy: () => {} }, opts.floats ?? "f32", opts.paramsEntries);
    this.limits = {
      maxStorageBufferBindingSize: Infinity,
      maxBufferSize: Infinity,
      maxComputeWorkgroupsPerDimension: Infinity,
      maxStorageBuffersPerShaderStage: Infinity,
      ...opts.limits,
    };
  }

  /** Checks that `t` is live; no data is written. */
  override fill(t: Tensor, _value: number): void {
    t.block;
  }

  /** Checks the length of `data` (throws on a mismatch); nothing is stored. */
  override write(t: Tensor, data: Float32Array | Int32Array): void {
    if (data.length !== t.size) {
      throw new Error(`write "${t.name}": ${data.length} values for ${t.size} elements`);
    }
  }

  /** Checks the bounds of the copy (throws when out of bounds); nothing is copied. */
  override copy(
    src: Tensor,
    srcOffset: number,
    dst: Tensor,
    dstOffset: number,
    count: number,
  ): void {
    this.checkCopy(src, srcOffset, dst, dstOffset, count);
  }

  /** Checks that `t` is live; there is no texture to copy into. */
  protected override stageTexture(t: Tensor, _block: Block<null>): void {
    t.block;
  }

  /**
   * Validates the call (throws like WebGPU would), counts it and its pipeline, and reserves
   * its parameter block as WebGPU does; nothing runs.
   */
  override dispatch(call: KernelCall): void {
    if (this.prepare(call)) this.dispatches++;
  }

  /** NaN (f32) or 0 (i32) of `t`'s size. */
  protected override readVia(
    t: Tensor,
    _staging: Resource<null>,
  ): Promise<Float32Array | Int32Array> {
    return Promise.resolve(
      t.dtype === "i32" ? new Int32Array(t.size) : new Float32Array(t.size).fill(NaN),
    );
  }

  /** No data: the host copy only counts its bytes. */
  protected override readToHost(
    t: Tensor,
    _staging: Resource<null>,
  ): Promise<Float32Array | Int32Array | null> {
    t.block;
    return Promise.resolve(null);
  }

  /** Checks that `t` is live; nothing is written. */
  protected override uploadVia(
    t: Tensor,
    _data: Float32Array | Int32Array | null,
    _staging: Resource<null>,
  ): Promise<void> {
    t.block;
    return Promise.resolve();
  }

  /** Resolves at once: there is no pending work. */
  override sync(): Promise<void> {
    return Promise.resolve();
  }

  /** Drops the parameter cache and releases the allocator's cached buffers. */
  override destroy(): void {
    this.params.clear();
    this.allocator.releaseCached();
  }
}
