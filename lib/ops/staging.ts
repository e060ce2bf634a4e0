/**
 * Staging operands as textures around one dispatch: the one try/finally the texture kernels
 * (matmul, NF4 linear, attention) share.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import type { TensorTexture } from "../device/texture.ts";

/**
 * Stages each `[tensor, name]` of `operands` as a texture (`Device.texture`, a `workspace`
 * allocation named `name`), in order, hands the textures to `use` and frees them in the same
 * order when it returns or throws. A staging that fails frees the ones made before it.
 */
export function withStagedTextures<T>(
  dev: Device,
  operands: readonly (readonly [Tensor, string])[],
  use: (textures: TensorTexture[]) => T,
): T {
  const textures: TensorTexture[] = [];
  try {
    for (const [t, name] of operands) textures.push(dev.texture(t, name));
    return use(textures);
  } finally {
    for (const t of textures) t.dispose();
  }
}
