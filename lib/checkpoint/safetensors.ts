/**
 * Reading and writing safetensors files (the Hugging Face tensor file format).
 *
 * Layout: an 8-byte little-endian unsigned header length N; N bytes of UTF-8 JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, …, "__metadata__": { string: string } }`
 * (padded with spaces so the data starts 8-byte aligned); then the data buffer, where each
 * tensor occupies bytes [begin, end) relative to the buffer start, little-endian, row-major.
 *
 * No npm package fit (none maintained for Deno/Node without native code), so this is a
 * small own implementation. Writing keeps the map's insertion order; reading validates
 * everything the format promises (header size, JSON, dtypes, shapes, byte counts, that the
 * tensors tile the data buffer exactly) and names the file and the problem when it fails.
 * Files are written atomically: to a temporary name in the same directory, then renamed.
 */

import { writeFileAtomic } from "../util/atomic_write.ts";
import { readFile } from "node:fs/promises";

/** Element types supported (safetensors dtype names). F16/BF16 are raw 16-bit patterns. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

/** Typed array holding a tensor's elements. */
export type TensorData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** One tensor. `dtype` defaults from the array type when writing (Float32Array → F32, …). */
export interface SafeTensor {
  /** Element type (from the array type when absent; required for 16-bit floats). */
  dtype?: SafetensorsDtype;
  /** Shape, row-major. */
  shape: number[];
  /** The elements, little-endian. */
  data: TensorData;
}

/** A parsed file: tensors in file order (by data offset) and the metadata strings. */
export interface SafetensorsFile {
  /** Tensors by name, in file order. */
  tensors: Map<string, Required<SafeTensor>>;
  /** The `__metadata__` strings. */
  metadata: Record<string, string>;
}

/** Error for a file that is not a valid safetensors file. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

const DTYPES: Record<
  SafetensorsDtype,
  { bytes: number; make: (buf: ArrayBuffer) => TensorData }
> = {
  F64: { bytes: 8, make: (b) => new Float64Array(b) },
  F32: { bytes: 4, make: (b) => new Float32Array(b) },
  F16: { bytes: 2, make: (b) => new Uint16Array(b) },
  BF16: { bytes: 2, make: (b) => new Uint16Array(b) },
  I64: { bytes: 8, make: (b) => new BigInt64Array(b) },
  I32: { bytes: 4, make: (b) => new Int32Array(b) },
  I16: { bytes: 2, make: (b) => new Int16Array(b) },
  I8: { bytes: 1, make: (b) => new Int8Array(b) },
  U8: { bytes: 1, make: (b) => new Uint8Array(b) },
  BOOL: { bytes: 1, make: (b) => new Uint8Array(b) },
};

/** Largest header accepted when reading (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
  throw new Error("safetensors: this code assumes a little-endian host");
}

function defaultDtype(data: TensorData): SafetensorsDtype {
  if (data instanceof Float64Array) return "F64";
  if (data instanceof Float32Array) return "F32";
  if (data instanceof BigInt64Array) return "I64";
  if (data instanceof Int32Array) return "I32";
  if (data instanceof Int16Array) return "I16";
  if (data instanceof Int8Array) return "I8";
  if (data instanceof Uint8Array) return "U8";
  throw new Error(
    "safetensors: a Uint16Array is ambiguous (F16 or BF16): set dtype on the tensor",
  );
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((s) => Number.isInteger(s) && s >= 0);
}

/**
 * The bytes of a safetensors file holding `tensors` (in map order) and `metadata`.
 * @throws Error for a shape that does not match the data length, a bad name, or an element
 *   type that does not match the array type.
 */
export function serializeSafetensors(
  tensors: ReadonlyMap<string, SafeTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") {
      throw new Error(`safetensors: metadata "${k}" must be a string, got ${typeof v}`);
    }
  }
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of tensors) {
    if (name.length === 0 || name === "__metadata__") {
      throw new Error(`safetensors: invalid tensor name ${JSON.stringify(name)}`);
    }
    const dtype = t.dtype ?? defaultDtype(t.data);
    const info = DTYPES[dtype];
    if (!info) throw new Error(`safetensors: tensor "${name}": unknown dtype ${dtype}`);
    if (info.bytes !== t.data.BYTES_PER_ELEMENT) {
      throw new Error(
        `safetensors: tensor "${name}": dtype ${dtype} needs ${info.bytes}-byte elements, ` +
          `the array has ${t.data.BYTES_PER_ELEMENT}-byte elements`,
      );
    }
    if (!checkShape(t.shape) || numel(t.shape) !== t.data.length) {
      throw new Error(
        `safetensors: tensor "${name}": shape ${JSON.stringify(t.shape)} holds ${
          checkShape(t.shape) ? numel(t.shape) : "?"
        } elements but the data has ${t.data.length}`,
      );
    }
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const pad = (8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8;
  json += " ".repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let o = 8 + headerBytes.length;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Parses the bytes of a safetensors file. Tensor data is copied (the result does not alias
 * `bytes`).
 * @param source file name for error messages.
 * @throws SafetensorsError naming the problem: truncated file, oversized or non-JSON
 *   header, unknown dtype, bad shape, wrong byte count, overlapping or missing data.
 */
export function parseSafetensors(bytes: Uint8Array, source = "<bytes>"): SafetensorsFile {
  const fail = (msg: string) =>
    new SafetensorsError(`${source}: not a valid safetensors file: ${msg}`);
  if (bytes.length < 8) {
    throw fail(`only ${bytes.length} bytes, shorter than the 8-byte header length (truncated?)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw fail(`header length ${n64} exceeds ${MAX_HEADER_BYTES} bytes (corrupt length field?)`);
  }
  const n = Number(n64);
  if (8 + n > bytes.length) {
    throw fail(
      `header says ${n} header bytes but the file has ${
        bytes.length - 8
      } after the length (truncated)`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw fail(`header is not UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw fail("header is not a JSON object");
  }
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const entries: {
    name: string;
    dtype: SafetensorsDtype;
    shape: number[];
    begin: number;
    end: number;
  }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw fail("__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== "string") throw fail(`__metadata__.${k} is not a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null) throw fail(`entry "${name}" is not an object`);
    const dtype = e.dtype as SafetensorsDtype;
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPES, dtype)) {
      throw fail(`tensor "${name}": unsupported dtype ${JSON.stringify(e.dtype)}`);
    }
    if (!checkShape(e.shape)) throw fail(`tensor "${name}": bad shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (
      !Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x) && x >= 0) ||
      off[1] < off[0]
    ) {
      throw fail(`tensor "${name}": bad data_offsets ${JSON.stringify(off)}`);
    }
    const expected = numel(e.shape) * DTYPES[dtype].bytes;
    if (off[1] - off[0] !== expected) {
      throw fail(
        `tensor "${name}": ${dtype} ${JSON.stringify(e.shape)} needs ${expected} bytes, ` +
          `data_offsets span ${off[1] - off[0]}`,
      );
    }
    entries.push({ name, dtype, shape: e.shape, begin: off[0], end: off[1] });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of entries) {
    if (e.begin !== cursor) {
      throw fail(
        `tensor "${e.name}" starts at byte ${e.begin}, expected ${cursor} ` +
          `(tensors overlap or leave a hole)`,
      );
    }
    cursor = e.end;
  }
  if (cursor > dataLength) {
    throw fail(`tensors need ${cursor} data bytes but the file has ${dataLength} (truncated)`);
  }
  if (cursor < dataLength) {
    throw fail(`${dataLength - cursor} bytes after the last tensor (corrupt or wrong header)`);
  }
  const tensors = new Map<string, Required<SafeTensor>>();
  for (const e of entries) {
    // Copy through a fresh buffer (Node Buffer#slice would alias a shared pool).
    const copy = new Uint8Array(e.end - e.begin);
    copy.set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      data: DTYPES[e.dtype].make(copy.buffer),
    });
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically ({@link serializeSafetensors}, {@link writeFileAtomic}). */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, SafeTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

/** Reads and validates a safetensors file ({@link parseSafetensors}). */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readFile(path), path);
}

export { writeFileAtomic };
