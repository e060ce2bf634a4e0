/**
 * Test helpers: a shared WebGPU device per test file.
 *
 * Run GPU tests through `deno task test`, which sets `DENO_WEBGPU_BACKEND=vulkan,metal,dx12`.
 * Without it wgpu also starts its GL backend on every test module's thread; that loads libEGL,
 * whose exit-time teardown races with those threads exiting and can abort the process after every
 * test passed (README.md, Troubleshooting). The shared device is left to the runtime to release
 * when the module's isolate is torn down; the abort did not come from devices left alive.
 */

import { WebGPUDevice } from "../device/webgpu.ts";

let shared: Promise<WebGPUDevice> | null = null;
let sharedF16: Promise<WebGPUDevice> | null = null;

/** One WebGPU device per test process (creating devices is slow on lavapipe). */
export function testDevice(): Promise<WebGPUDevice> {
  return shared ??= WebGPUDevice.create();
}

/** One mixed-precision (`floats: "f16"`) WebGPU device per test process. */
export function testDeviceF16(): Promise<WebGPUDevice> {
  return sharedF16 ??= WebGPUDevice.create({ floats: "f16" });
}

/** Deno test options for tests that hold the device open across tests. */
export const gpuTest = { sanitizeResources: false, sanitizeOps: false } as const;
