/** Test helpers: a shared WebGPU device per test file. */

import { WebGPUDevice } from "../device/webgpu.ts";

let shared: Promise<WebGPUDevice> | null = null;

/** One WebGPU device per test process (creating devices is slow on lavapipe). */
export function testDevice(): Promise<WebGPUDevice> {
  return shared ??= WebGPUDevice.create();
}

/** Deno test options for tests that hold the device open across tests. */
export const gpuTest = { sanitizeResources: false, sanitizeOps: false } as const;
