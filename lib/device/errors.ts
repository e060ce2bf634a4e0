/** Errors of the device layer. Each message says what went wrong and what to do. */

import { formatBytes } from "./dtype.ts";

/** Bytes live under one tag. */
export type TagBytes = Record<string, number>;

/** A live tensor, as listed in an out-of-memory or leak report. */
export interface LiveTensorInfo {
  /** Allocation id. */
  id: number;
  /** Tensor name. */
  name: string;
  /** Accounting tag. */
  tag: string;
  /** Accounted bytes. */
  bytes: number;
}

/**
 * An allocation would exceed the memory budget (or WebGPU itself ran out of memory).
 * The message lists the request, the live bytes per tag and the largest live tensors.
 */
export class OutOfMemoryError extends Error {
  /** Always `"OutOfMemoryError"`. */
  override name = "OutOfMemoryError";
  /**
   * Builds the message from the figures below.
   * @param requestedBytes Bytes of the allocation that failed.
   * @param tag Tag of that allocation.
   * @param budgetBytes The limit it exceeded, in bytes.
   * @param liveByTag Live bytes per tag when it failed.
   * @param largest The largest live tensors.
   * @param reason What was exceeded, for the message (default "the memory budget").
   */
  constructor(
    readonly requestedBytes: number,
    readonly tag: string,
    readonly budgetBytes: number,
    readonly liveByTag: TagBytes,
    readonly largest: LiveTensorInfo[],
    reason = "the memory budget",
  ) {
    const live = Object.values(liveByTag).reduce((a, b) => a + b, 0);
    const tags = Object.entries(liveByTag)
      .filter(([, b]) => b > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([t, b]) => `  ${t.padEnd(12)} ${formatBytes(b)}`)
      .join("\n");
    const big = largest
      .map((t) => `  #${t.id} ${t.name} (${t.tag}) ${formatBytes(t.bytes)}`)
      .join("\n");
    super(
      `out of memory: allocating ${
        formatBytes(requestedBytes)
      } for tag "${tag}" exceeds ${reason} ` +
        `(${formatBytes(budgetBytes)}; ${formatBytes(live)} live).\n` +
        `Live bytes per tag:\n${tags || "  (none)"}\n` +
        `Largest live tensors:\n${big || "  (none)"}\n` +
        `Lower the sequence length, enable --mst / --checkpoint, or raise the budget.`,
    );
  }
}

/**
 * A kernel was given a tensor above the device's `maxStorageBufferBindingSize` (on WebGPU the
 * binding limit; in plans also a stand-in for kernels that index with 32-bit offsets).
 */
export class BindingLimitError extends Error {
  /** Always `"BindingLimitError"`. */
  override name = "BindingLimitError";
  /**
   * Builds the message from the call that broke the limit.
   * @param kernel The kernel.
   * @param tensor The tensor's name.
   * @param bytes The tensor's bytes.
   * @param limit The device's limit.
   */
  constructor(
    readonly kernel: string,
    readonly tensor: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      `kernel "${kernel}": tensor "${tensor}" is ${bytes} bytes, above the device's ` +
        `maxStorageBufferBindingSize ${limit}; use mini-sequences (--mst) to keep tensors smaller`,
    );
  }
}

/**
 * A kernel parameter (a count or an index, e.g. S·d elements) does not fit its 32-bit uniform
 * field: the kernels index with 32-bit integers, so a step whose tensors hold 2^32 elements or
 * more cannot run (plans report it as not fitting).
 */
export class IndexRangeError extends Error {
  /** Always `"IndexRangeError"`. */
  override name = "IndexRangeError";
  /**
   * Builds the message from the value.
   * @param type The field's type.
   * @param value The value that does not fit.
   */
  constructor(readonly type: "u32" | "i32", readonly value: number) {
    super(
      `${type} parameter out of range: ${value} (kernels index with 32-bit integers; ` +
        `use a shorter sequence per device, mini-sequences (--mst) or sequence parallelism (--sp))`,
    );
  }
}

/** Tensors allocated inside a checked region were never disposed. */
export class LeakError extends Error {
  /** Always `"LeakError"`. */
  override name = "LeakError";
  /**
   * Builds the message from the leaked tensors.
   * @param leakedBytes Total bytes of the leaked tensors.
   * @param leaked The leaked tensors (the message lists the first 10).
   */
  constructor(readonly leakedBytes: number, readonly leaked: LiveTensorInfo[]) {
    super(
      `memory leak: ${formatBytes(leakedBytes)} still live above the baseline in ` +
        `${leaked.length} tensor(s):\n` +
        leaked.slice(0, 10).map((t) => `  #${t.id} ${t.name} (${t.tag}) ${formatBytes(t.bytes)}`)
          .join("\n") +
        `\nDispose them (tensor.dispose()) or create them inside device.scope().`,
    );
  }
}

/** A WGSL source failed to compile; the message shows the offending lines. */
export class WGSLCompileError extends Error {
  /** Always `"WGSLCompileError"`. */
  override name = "WGSLCompileError";
  /**
   * Builds the message from the kernel name and the details.
   * @param kernel Kernel name.
   * @param details The compiler's messages with the offending lines.
   */
  constructor(readonly kernel: string, readonly details: string) {
    super(`WGSL kernel "${kernel}" does not compile:\n${details}`);
  }
}

/** No usable WebGPU adapter or device. */
export class WebGPUUnavailableError extends Error {
  /** Always `"WebGPUUnavailableError"`. */
  override name = "WebGPUUnavailableError";
}

/** The GPU device was lost; every later operation fails with this error. */
export class DeviceLostError extends Error {
  /** Always `"DeviceLostError"`. */
  override name = "DeviceLostError";
}
