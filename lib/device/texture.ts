/**
 * Read-only texture copies of tensors.
 *
 * On lavapipe a `textureLoad` costs a fraction of a storage-buffer load (every storage load
 * becomes a per-lane loop with a bounds check), so kernels that read their operands many
 * times (matmul, attention) can stage them into textures first. A staged tensor is the
 * tensor's data as a flat array of vec4 texels in an `rgba32float` texture (f32 tensors) or an
 * `rgba16float` texture (f16 tensors, on a mixed-precision device: a plain buffer-to-texture
 * copy, and `textureLoad` still returns `vec4<f32>`, so kernels read both alike)
 * {@link TEXTURE_ROW_TEXELS} texels wide: texel `i` (floats 4i..4i+3) is at
 * `(i % 1024, i / 1024)`. In WGSL:
 *
 * ```wgsl
 * @group(2) @binding(0) var a_tex: texture_2d<f32>;
 * fn loadA(i: u32) -> vec4<f32> { return textureLoad(a_tex, vec2<u32>(i & 1023u, i >> 10u), 0); }
 * ```
 *
 * The texture's bytes are accounted as a `workspace` allocation (whole rows of 16 KiB, 8 KiB in
 * f16), the same on the WebGPU and the meta device, so plans stay exact. A device stages only
 * tensors of its float storage (`Device.floatType`), so one pool never mixes formats.
 */

import type { Block } from "./allocator.ts";
import type { Tensor } from "./tensor.ts";

/** Texels per texture row (16 KiB of f32). */
export const TEXTURE_ROW_TEXELS = 1024;
/** Floats per texture row. */
export const TEXTURE_ROW_FLOATS = 4 * TEXTURE_ROW_TEXELS;
/**
 * Most texture rows a staged tensor may use (8192 rows, 128 MiB): the largest texture height
 * every WebGPU device supports (`maxTextureDimension2D` 8192 without raised limits; the pool's
 * size classes above 1 MiB are multiples of 64 rows, so a pooled texture stays within it). A
 * fixed number, not the adapter's limit, so every device makes the same staging decisions.
 */
export const MAX_TEXTURE_ROWS = 8192;

/** Whether `t` can be staged as a texture: a float, a multiple of 4 elements, not too large. */
export function canStageAsTexture(t: Tensor): boolean {
  return t.dtype !== "i32" && t.size > 0 && t.size % 4 === 0 &&
    Math.ceil(t.size / TEXTURE_ROW_FLOATS) <= MAX_TEXTURE_ROWS;
}

/** A staged read-only copy of a tensor; dispose it when the kernels using it are encoded. */
export class TensorTexture {
  #disposed = false;
  /**
   * Created by `Device.texture`; `release` returns the texture to the device and frees the
   * accounting block.
   */
  constructor(
    /** Name, for errors and reports. */
    readonly name: string,
    /** Texture rows (height). */
    readonly rows: number,
    /** Element type of the staged tensor (f32: `rgba32float`, f16: `rgba16float`). */
    readonly dtype: "f32" | "f16",
    /** The accounting block. */
    readonly block: Block,
    /** The device's texture (a GPUTexture on WebGPU, null on meta). */
    readonly handle: unknown,
    private readonly release: (t: TensorTexture) => void,
  ) {}

  /** Counted bytes. */
  get bytes(): number {
    return this.block.bytes;
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Frees the texture (back to the device's pool) and its accounting. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.release(this);
  }
}
