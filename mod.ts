/**
 * MsT workbench: a scriptable research workbench for long-sequence LLM training memory
 * (Mini-Sequence Transformer, arXiv 2407.15892), in TypeScript on Deno and WebGPU.
 *
 * The public API: devices (WebGPU and the compute-free meta device) with exact memory
 * accounting, tensors, and the ops the models are built from.
 *
 * @example Count the bytes of a computation without computing it
 * ```ts
 * import { add, MetaDevice } from "./mod.ts";
 *
 * const dev = new MetaDevice({ floats: "bf16" });
 * const x = dev.tensor([4096, 4096], { tag: "activations", name: "x" });
 * const r = dev.tensor([4096, 4096], { tag: "activations", name: "residual" });
 * const y = add(dev, x, r);
 * console.log(dev.allocator.stats().peakBytes); // 100663296 (three 32 MiB bf16 tensors)
 * ```
 *
 * @example Run a kernel on WebGPU
 * ```ts
 * import { add, WebGPUDevice } from "./mod.ts";
 *
 * const dev = await WebGPUDevice.create();
 * const a = dev.upload([1, 2, 3], [3], { tag: "activations" });
 * const b = dev.upload([10, 20, 30], [3], { tag: "activations" });
 * console.log(await dev.read(add(dev, a, b))); // Float32Array [11, 22, 33]
 * ```
 * @module
 */

export * from "./lib/device/mod.ts";
export { add, addInPlace } from "./lib/ops/add.ts";
export type { Family, ModelConfig } from "./lib/models/config.ts";
