/**
 * The driver's own memory: bytes a device holds that neither a tensor nor a pooled resource
 * accounts for, and that the workbench cannot remove.
 *
 * On lavapipe these are host memory, so they were measured from the process's resident set
 * (`deno task rss-check --overhead` measures them again and compares):
 *
 * - a fixed cost per device: the Vulkan driver and LLVM loaded and initialized, the queue,
 *   command pools, and the first shader compilation;
 * - a cost per compute pipeline: the JIT-compiled code of the kernel and what LLVM keeps for
 *   it. It is averaged over the kernels of a training step (big register-tiled kernels cost
 *   more than small ones).
 *
 * The bind group and parameter caches of the WebGPU device are bounded (see `webgpu.ts`,
 * `params_cache.ts`) and small next to these; their uniform buffers are in the pool.
 *
 * The planner adds this overhead to its figures (`overheadBytes`), counting pipelines on the
 * meta device exactly as WebGPU creates them.
 */

const MiB = 2 ** 20;

/** A driver's memory overhead model. */
export interface DriverOverhead {
  /** Which driver the figures are for. */
  driver: string;
  /** Bytes per device, whatever runs on it. */
  fixedBytes: number;
  /** Bytes per compiled compute pipeline (mean over a training step's kernels). */
  perPipelineBytes: number;
}

/**
 * Mesa lavapipe (llvmpipe, LLVM 15) under Deno 2.9.6, measured with `deno task rss-check
 * --overhead` on llama3-tiny (23 pipelines per training step), 2 CPU cores, median of 3: fixed
 * 69.7–70.4 MiB; 7.3 MiB per pipeline since the attention kernels split their key loops into
 * unmasked and masked parts (4.4 MiB before). Lavapipe compiles exactly one shader per
 * pipeline because kernels read their parameters from storage there (`paramsIn`).
 */
export const LAVAPIPE_OVERHEAD: DriverOverhead = {
  driver: "lavapipe",
  fixedBytes: 70 * MiB,
  perPipelineBytes: 7 * MiB,
};

/** The modelled overhead of a device that has compiled `pipelines` compute pipelines. */
export function overheadBytes(model: DriverOverhead, pipelines: number): number {
  return model.fixedBytes + model.perPipelineBytes * pipelines;
}

/**
 * The overhead model for an adapter, by its description (lavapipe's is "llvmpipe …"), or null
 * when the driver was never measured.
 */
export function overheadFor(adapterDescription: string): DriverOverhead | null {
  return /llvmpipe|lavapipe/i.test(adapterDescription) ? LAVAPIPE_OVERHEAD : null;
}

/**
 * The overhead model of a device: its adapter's on WebGPU (null when unmeasured), lavapipe's
 * on the meta device (the one measured driver, as the planner uses).
 */
export function deviceOverhead(
  dev: { kind: "webgpu" | "meta"; adapterInfo?: GPUAdapterInfo },
): DriverOverhead | null {
  if (dev.kind === "meta") return LAVAPIPE_OVERHEAD;
  return overheadFor(dev.adapterInfo?.description ?? "");
}
