/**
 * The device layer: tensors, the accounting allocator, the WebGPU and meta devices.
 * @module
 */
export * from "./allocator.ts";
export * from "./device.ts";
export * from "./dtype.ts";
export * from "./errors.ts";
export * from "./host_tensor.ts";
export * from "./kernel_source.ts";
export * from "./meta.ts";
export * from "./overhead.ts";
export * from "./params_cache.ts";
export * from "./tensor.ts";
export * from "./texture.ts";
export * from "./webgpu.ts";
export * from "./create.ts";
