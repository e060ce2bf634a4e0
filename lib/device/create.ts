/** Device selection by name, as the command-line tools use it. */

import type { Device } from "./device.ts";
import type { FloatCounting } from "./dtype.ts";
import { MetaDevice } from "./meta.ts";
import { WebGPUDevice } from "./webgpu.ts";

/** Which device to run on. */
export type DeviceKind = "webgpu" | "meta";

/** Options of {@link createDevice}. */
export interface CreateDeviceOptions {
  /** Meta device only: how floats are counted. */
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
    if (opts.floats && opts.floats !== "f32") {
      throw new Error(
        `the webgpu device computes in f32 only; --dtype ${opts.floats} is for --device meta`,
      );
    }
    return await WebGPUDevice.create({ profile: opts.profile });
  }
  if (kind === "meta") return new MetaDevice({ floats: opts.floats });
  throw new Error(`unknown device "${kind}": use webgpu or meta`);
}
