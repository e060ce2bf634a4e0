/**
 * NF4 checkpoints: a safetensors checkpoint whose linear weights are quantised to NF4 with
 * double-quantised absmax (lib/reference/nf4.ts), in the layout transformers + bitsandbytes
 * write for a 4-bit model (`Linear4bit._save_to_state_dict`: the packed weight, then
 * `QuantState.as_dict(packed=True)` under `<weight>.`):
 *
 * | tensor | dtype, shape | content |
 * |---|---|---|
 * | `P.weight` | U8 [⌈n/2⌉, 1] | two 4-bit codes per byte, high nibble first |
 * | `P.weight.absmax` | U8 [⌈n/64⌉] | 8-bit codes of absmax − offset |
 * | `P.weight.nested_absmax` | F32 [⌈⌈n/64⌉/256⌉] | one constant per 256 absmax |
 * | `P.weight.nested_quant_map` | F32 [256] | the dynamic 8-bit map |
 * | `P.weight.quant_map` | F32 [16] | the NF4 values |
 * | `P.weight.quant_state.bitsandbytes__nf4` | U8 [bytes] | UTF-8 JSON `{"quant_type": "nf4", "blocksize": 64, "dtype": …, "shape": [out, in], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": …}` (Python `json.dumps` spacing) |
 *
 * with n = out·in. Every other tensor (embeddings, norms, the LM head, biases) is kept as it
 * was. The file's metadata keeps the input's and adds `quantization_config` (the JSON that
 * transformers puts in config.json: `quant_method: bitsandbytes`, `load_in_4bit`,
 * `bnb_4bit_quant_type: nf4`, `bnb_4bit_use_double_quant: true`, `bnb_4bit_quant_storage:
 * uint8`) and `nf4_modules`, the quantised module names (e.g. `self_attn.q_proj,…`).
 */

import { nf4Bytes, type Nf4Quantized, quantizeNf4 } from "../reference/nf4.ts";
import type { SafeTensor, SafetensorsFile } from "./safetensors.ts";

/** The seven linear layers of a decoder block that QLoRA quantises, by short name. */
export const NF4_TARGETS = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
} as const;

/** A short target name: q, k, v, o, gate, up or down. */
export type Nf4Target = keyof typeof NF4_TARGETS;

/** Suffix of the packed quant-state entry, as bitsandbytes names it. */
export const QUANT_STATE_SUFFIX = ".quant_state.bitsandbytes__nf4";

/** Parses `q,k,v,o,gate,up,down` (or `all`) into target names; throws on an unknown one. */
export function parseNf4Targets(text: string): Nf4Target[] {
  if (text.trim() === "all") return Object.keys(NF4_TARGETS) as Nf4Target[];
  const out: Nf4Target[] = [];
  for (const t of text.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    if (!(t in NF4_TARGETS)) {
      throw new Error(
        `unknown NF4 target "${t}": use "all" or a comma-separated subset of ${
          Object.keys(NF4_TARGETS).join(", ")
        }`,
      );
    }
    if (!out.includes(t as Nf4Target)) out.push(t as Nf4Target);
  }
  if (out.length === 0) throw new Error(`no NF4 target given in "${text}"`);
  return out;
}

/** True when `name` is the weight of one of `targets` in a decoder block. */
function isNf4Target(name: string, targets: readonly Nf4Target[]): boolean {
  return targets.some((t) => name.endsWith(`.${NF4_TARGETS[t]}.weight`));
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 or from 1e16. */
export function pythonFloatRepr(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : x < 0 ? "-Infinity" : "NaN";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expText] = x.toExponential().split("e");
  const exp = Number(expText);
  const neg = mant.startsWith("-");
  const digits = mant.replace("-", "").replace(".", "");
  const sign = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const int = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${int}.${frac === "" ? "0" : frac}`;
}

/** The torch dtype name bitsandbytes records for a safetensors float dtype. */
const TORCH_DTYPE: Record<string, string> = { F32: "float32", F16: "float16", BF16: "bfloat16" };

/** IEEE half bits → number. */
function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A float tensor's values as f32 (F32 as is; F16 and BF16 widened exactly). */
function floatValues(name: string, t: Required<SafeTensor>, source: string): Float32Array {
  if (t.dtype === "F32") return t.data as Float32Array;
  const bits = t.data as Uint16Array;
  if (t.dtype === "BF16") {
    return new Float32Array(Uint32Array.from(bits, (b) => b << 16).buffer);
  }
  if (t.dtype === "F16") return Float32Array.from(bits, halfToNumber);
  throw new Error(
    `${source}: "${name}" is ${t.dtype}; only F32, F16 and BF16 weights can be quantised to NF4`,
  );
}

/** What {@link quantizeCheckpoint} did. */
export interface Nf4QuantizeReport {
  /** Names of the weights quantised. */
  quantized: string[];
  /** Names of the tensors kept as they were. */
  kept: string[];
  /** Elements of the quantised weights. */
  quantizedParameters: number;
  /** Their bytes before (in the input dtype) and after (all six entries each). */
  bytesBefore: number;
  /** Bytes of the NF4 entries (packed, absmax, nested absmax, both maps, quant state). */
  bytesAfter: number;
  /** The NF4 data alone, `nf4Bytes` summed (codes, absmax codes, constants, offsets). */
  dataBytes: number;
}

/**
 * Quantises the `targets` linear weights of a parsed checkpoint to NF4 (see the module doc for
 * the layout) and keeps everything else. `source` names the input in errors.
 * @throws Error when the file is already quantised, holds none of the targets, or a target is
 *   not a 2-D F32/F16/BF16 matrix of finite values.
 */
export function quantizeCheckpoint(
  file: SafetensorsFile,
  targets: readonly Nf4Target[] = Object.keys(NF4_TARGETS) as Nf4Target[],
  source = "<checkpoint>",
): {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
  report: Nf4QuantizeReport;
} {
  for (const name of file.tensors.keys()) {
    if (name.endsWith(QUANT_STATE_SUFFIX)) {
      throw new Error(
        `${source} is already quantised ("${name}"); give the full-precision checkpoint`,
      );
    }
  }
  const tensors = new Map<string, SafeTensor>();
  const report: Nf4QuantizeReport = {
    quantized: [],
    kept: [],
    quantizedParameters: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    dataBytes: 0,
  };
  for (const [name, t] of file.tensors) {
    if (!isNf4Target(name, targets)) {
      tensors.set(name, t);
      report.kept.push(name);
      continue;
    }
    if (t.shape.length !== 2) {
      throw new Error(
        `${source}: "${name}" has shape [${t.shape.join(", ")}]; a linear weight is 2-D (out, in)`,
      );
    }
    let q: Nf4Quantized;
    try {
      q = quantizeNf4(floatValues(name, t, source), t.shape);
    } catch (e) {
      throw new Error(`${source}: "${name}": ${(e as Error).message}`);
    }
    const entries = nf4Entries(name, q, TORCH_DTYPE[t.dtype]);
    for (const [k, v] of entries) {
      tensors.set(k, v);
      report.bytesAfter += v.data.byteLength;
    }
    report.quantized.push(name);
    report.quantizedParameters += t.shape[0] * t.shape[1];
    report.dataBytes += nf4Bytes(t.shape[0], t.shape[1]).total;
    report.bytesBefore += t.data.byteLength;
  }
  if (report.quantized.length === 0) {
    throw new Error(
      `${source} holds no weight of the targets ${targets.join(", ")} (names ending in ` +
        `${targets.map((t) => `.${NF4_TARGETS[t]}.weight`).join(", ")}); is it a decoder ` +
        `checkpoint with Hugging Face names?`,
    );
  }
  const metadata = {
    ...file.metadata,
    quantization_config: JSON.stringify({
      quant_method: "bitsandbytes",
      load_in_4bit: true,
      load_in_8bit: false,
      bnb_4bit_quant_type: "nf4",
      bnb_4bit_use_double_quant: true,
      bnb_4bit_quant_storage: "uint8",
    }),
    nf4_modules: targets.map((t) => NF4_TARGETS[t]).join(","),
  };
  return { tensors, metadata, report };
}

/** The six safetensors entries of one quantised weight (bitsandbytes' names and order). */
function nf4Entries(
  name: string,
  q: Nf4Quantized,
  dtype = "float32",
): Map<string, SafeTensor> {
  const state = `{"quant_type": "nf4", "blocksize": 64, "dtype": "${dtype}", "shape": [${
    q.shape.join(", ")
  }], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ${
    pythonFloatRepr(q.offset)
  }}`;
  const stateBytes = new TextEncoder().encode(state);
  return new Map<string, SafeTensor>([
    [name, { dtype: "U8", shape: [q.packed.length, 1], data: q.packed }],
    [`${name}.absmax`, { dtype: "U8", shape: [q.absmax.length], data: q.absmax }],
    [`${name}.quant_map`, { dtype: "F32", shape: [16], data: q.quantMap }],
    [`${name}.nested_absmax`, {
      dtype: "F32",
      shape: [q.nestedAbsmax.length],
      data: q.nestedAbsmax,
    }],
    [`${name}.nested_quant_map`, { dtype: "F32", shape: [256], data: q.nestedMap }],
    [`${name}${QUANT_STATE_SUFFIX}`, { dtype: "U8", shape: [stateBytes.length], data: stateBytes }],
  ]);
}

/** Names of the NF4 weights in a parsed file (those with a bitsandbytes quant state). */
export function nf4WeightNames(file: SafetensorsFile): string[] {
  return [...file.tensors.keys()]
    .filter((k) => k.endsWith(QUANT_STATE_SUFFIX))
    .map((k) => k.slice(0, -QUANT_STATE_SUFFIX.length));
}

/**
 * Reads the NF4 weight `name` of a parsed file back (the layout of the module doc), checking
 * every entry. The maps are the file's own: a file bitsandbytes wrote on another machine may
 * differ from ours (`dynamicMap`) in last bits, and dequantisation must use what it stored.
 */
export function readNf4Weight(
  file: SafetensorsFile,
  name: string,
  source = "<checkpoint>",
): Nf4Quantized {
  const get = (suffix: string, dtype: string) => {
    const t = file.tensors.get(name + suffix);
    if (!t) {
      throw new Error(`${source}: NF4 weight "${name}" lacks its entry "${name}${suffix}"`);
    }
    if (t.dtype !== dtype) {
      throw new Error(`${source}: "${name}${suffix}" is ${t.dtype}, expected ${dtype}`);
    }
    return t;
  };
  const stateText = new TextDecoder().decode(get(QUANT_STATE_SUFFIX, "U8").data as Uint8Array);
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(stateText);
  } catch (e) {
    throw new Error(
      `${source}: "${name}${QUANT_STATE_SUFFIX}" is not JSON: ${(e as Error).message}`,
    );
  }
  const shape = state.shape;
  if (
    state.quant_type !== "nf4" || state.blocksize !== 64 || state.nested_blocksize !== 256 ||
    typeof state.nested_offset !== "number" || !Array.isArray(shape) || shape.length !== 2 ||
    !shape.every((d) => Number.isInteger(d) && d > 0)
  ) {
    throw new Error(
      `${source}: "${name}" has quant state ${stateText}; supported: quant_type "nf4", ` +
        `blocksize 64, double quantisation (nested_blocksize 256, nested_offset), a 2-D shape`,
    );
  }
  const q: Nf4Quantized = {
    shape: shape as number[],
    packed: get("", "U8").data as Uint8Array,
    absmax: get(".absmax", "U8").data as Uint8Array,
    nestedAbsmax: get(".nested_absmax", "F32").data as Float32Array,
    offset: Math.fround(state.nested_offset),
    quantMap: get(".quant_map", "F32").data as Float32Array,
    nestedMap: get(".nested_quant_map", "F32").data as Float32Array,
  };
  const n = q.shape[0] * q.shape[1];
  const blocks = Math.ceil(n / 64);
  if (
    q.packed.length !== Math.ceil(n / 2) || q.absmax.length !== blocks ||
    q.nestedAbsmax.length !== Math.ceil(blocks / 256) || q.quantMap.length !== 16 ||
    q.nestedMap.length !== 256
  ) {
    throw new Error(
      `${source}: NF4 weight "${name}" of shape [${q.shape.join(", ")}] needs ` +
        `${Math.ceil(n / 2)} packed bytes, ${blocks} absmax codes, ${
          Math.ceil(blocks / 256)
        } nested absmax, 16 + 256 map values; the file has ${q.packed.length}, ` +
        `${q.absmax.length}, ${q.nestedAbsmax.length}, ${q.quantMap.length} + ${q.nestedMap.length}`,
    );
  }
  return q;
}
