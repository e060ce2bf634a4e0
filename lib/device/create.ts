/** Device selection by name, as the command-line tools use it. */

import type { Device } from "./device.ts";
import type { FloatCounting } from "./dtype.ts";
import { MetaDevice } from "./meta.ts";
import { WebGPUDevice } from "./webgpu.ts";

/** Options of {@link createDevice}. */
export interface CreateDeviceOptions {
  /**
   * How floats are stored: f32, f16 (mixed precision; on WebGPU it needs `shader-f16`) or, on
   * the meta device only, bf16 counting.
   */
  floats?: FloatCounting;
  /** WebGPU only: per-kernel timestamps. */
  profile?: boolean;
}

/** Creates a device by name; errors say which names exist. */
export async function createDevice(
  kind: string,
  opts: CreateDeviceOptions = {},
): Promise<Device> {
  if (kind === "webgpu") {
    if (opts.floats === "bf16") {
      throw new Error(
        `WebGPU has no bf16: --dtype bf16 is for --device meta; train in half precision with ` +
          `--dtype f16 (mixed precision, needs the adapter feature shader-f16)`,
      );
    }
    return await WebGPUDevice.create({ profile: opts.profile, floats: opts.floats });
  }
  if (kind === "meta") return new MetaDevice({ floats: opts.floats });
  throw new Error(`unknown device "${kind}": use webgpu or meta`);
}
