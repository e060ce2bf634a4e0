/** Test helper: an op must allocate exactly the same tensors on the meta device as on WebGPU. */

import assert from "node:assert/strict";
import type { MemoryEvent } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { MetaDevice } from "../device/meta.ts";

/** One allocation or free as compared across devices. */
interface Event {
  kind: MemoryEvent["kind"];
  bytes: number;
  tag: string;
  name: string;
}

async function trace(dev: Device, run: (dev: Device) => unknown): Promise<Event[]> {
  dev.allocator.startTimeline();
  try {
    await run(dev);
  } catch (e) {
    dev.allocator.stopTimeline();
    throw e;
  }
  return dev.allocator.stopTimeline().map(({ kind, bytes, tag, name }) => ({
    kind,
    bytes,
    tag,
    name,
  }));
}

/**
 * Runs `run` on `gpu` and on a fresh {@link MetaDevice} (with the same float storage) and asserts the same sequence of
 * allocations and frees (kind, bytes, tag, name). `run` should dispose what it creates.
 */
export async function assertSameAllocations(
  gpu: Device,
  run: (dev: Device) => unknown,
): Promise<void> {
  const onGpu = await trace(gpu, run);
  const meta = new MetaDevice({ floats: gpu.floats });
  const onMeta = await trace(meta, run);
  assert.deepEqual(onMeta, onGpu, "meta and webgpu allocation sequences differ");
  assert.ok(onGpu.length > 0, "the op allocated nothing: nothing to compare");
}
