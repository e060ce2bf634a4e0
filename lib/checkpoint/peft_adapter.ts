/**
 * LoRA adapters in PEFT's file layout: a directory holding `adapter_model.safetensors` and
 * `adapter_config.json`, as `PeftModel.save_pretrained` writes them for a causal LM (read from
 * huggingface/peft at 5d602fd: `utils/save_and_load.py`, `peft_model.py`, `config.py`,
 * `tuners/lora/config.py`).
 *
 * - Tensor keys: the module's path in the PEFT-wrapped model without the adapter name, e.g.
 *   `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` (A, (r, in)) and
 *   `….lora_B.weight` (B, (out, r)); metadata `{"format": "pt"}`. We write F32 (the f32 master
 *   on a mixed-precision device), so a save/load round trip is bit-exact; F16 and BF16 files
 *   are read too.
 * - `adapter_config.json`: `LoraConfig`'s fields as `json.dumps(…, indent=2, sort_keys=True)`
 *   writes them, with `inference_mode: true` as `save_pretrained` sets it.
 *
 * Both files are written atomically (`lib/util/atomic_write.ts`). Adapters only: the frozen
 * base is not in them, nor the optimizer's moments (a resumable run keeps those beside them).
 */

import type { Device } from "../device/device.ts";
import type { LoraLinear } from "../nn/lora.ts";
import { writeFileAtomic } from "../util/atomic_write.ts";
import { pythonFloatRepr } from "./nf4_checkpoint.ts";
import {
  readSafetensors,
  type SafeTensor,
  SafetensorsError,
  writeSafetensors,
} from "./safetensors.ts";

/** File names, as PEFT's `SAFETENSORS_WEIGHTS_NAME` and `CONFIG_NAME`. */
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";
/** See {@link ADAPTER_WEIGHTS_FILE}. */
export const ADAPTER_CONFIG_FILE = "adapter_config.json";
/** Prefix PEFT's `PeftModelForCausalLM` puts before the base model's own parameter names. */
export const PEFT_PREFIX = "base_model.model.";

/** The LoRA settings of an adapter (the `LoraConfig` fields this workbench uses). */
export interface LoraAdapterConfig {
  /** Rank. */
  r: number;
  /** `lora_alpha`. */
  loraAlpha: number;
  /** `lora_dropout` (0 when we train). */
  loraDropout: number;
  /** `target_modules`: module short names, e.g. `q_proj`, `down_proj`. */
  targetModules: string[];
  /** `use_rslora`. */
  useRslora: boolean;
  /** `base_model_name_or_path` (null when unknown). */
  baseModelNameOrPath: string | null;
}

/** One module's adapters on the host, f32. */
export interface HostLoraAdapter {
  /** A (r, in). */
  a: { shape: [number, number]; data: Float32Array };
  /** B (out, r). */
  b: { shape: [number, number]; data: Float32Array };
}

/** A loaded adapter directory: the config and the adapters by module name (`model.layers.0.…`). */
export interface LoraAdapterFile {
  /** `adapter_config.json`, parsed and checked. */
  config: LoraAdapterConfig;
  /** The adapters by module name (`model.layers.0.self_attn.q_proj`). */
  adapters: Map<string, HostLoraAdapter>;
}

/** The safetensors key of a module's A or B, as PEFT saves it. */
export function peftAdapterKey(module: string, which: "A" | "B"): string {
  return `${PEFT_PREFIX}${module}.lora_${which}.weight`;
}

const KEY = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

/** The text of `adapter_config.json` for `cfg`, as PEFT's `save_pretrained` writes it. */
export function peftConfigJson(cfg: LoraAdapterConfig): string {
  checkConfig(cfg, "LoRA adapter config");
  // LoraConfig's fields (defaults where we do not use them); sort_keys=True
  const fields: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: cfg.baseModelNameOrPath,
    bias: "none",
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: "\u0000alpha",
    lora_bias: false,
    lora_dropout: "\u0000dropout",
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    peft_type: "LORA",
    r: cfg.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...cfg.targetModules],
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: cfg.useRslora,
  };
  const sorted = Object.fromEntries(Object.keys(fields).sort().map((k) => [k, fields[k]]));
  // Python writes an int alpha as an int and floats with repr (0.0, not 0)
  const alpha = Number.isInteger(cfg.loraAlpha)
    ? String(cfg.loraAlpha)
    : pythonFloatRepr(cfg.loraAlpha);
  return JSON.stringify(sorted, null, 2)
    .replace('"\\u0000alpha"', alpha)
    .replace('"\\u0000dropout"', pythonFloatRepr(cfg.loraDropout));
}

function checkConfig(cfg: LoraAdapterConfig, source: string): void {
  if (!Number.isInteger(cfg.r) || cfg.r <= 0) {
    throw new Error(`${source}: r must be a positive integer, got ${cfg.r}`);
  }
  if (!Number.isFinite(cfg.loraAlpha)) {
    throw new Error(`${source}: lora_alpha must be a finite number, got ${cfg.loraAlpha}`);
  }
  if (!Number.isFinite(cfg.loraDropout) || cfg.loraDropout < 0 || cfg.loraDropout >= 1) {
    throw new Error(`${source}: lora_dropout must be in [0, 1), got ${cfg.loraDropout}`);
  }
  if (
    cfg.targetModules.length === 0 || cfg.targetModules.some((m) => typeof m !== "string" || !m)
  ) {
    throw new Error(`${source}: target_modules must be a non-empty list of module names`);
  }
}

/**
 * Parses `adapter_config.json` text. Refuses, naming the field, what would change the layer's
 * semantics and is not implemented: another `peft_type`, `use_dora`, `bias` other than
 * "none", `fan_in_fan_out`, per-module `rank_pattern`/`alpha_pattern`, a regular-expression
 * `target_modules`.
 */
export function parsePeftConfig(text: string, source = ADAPTER_CONFIG_FILE): LoraAdapterConfig {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
  if (!j || typeof j !== "object" || Array.isArray(j)) {
    throw new Error(`${source}: expected a JSON object of LoraConfig fields`);
  }
  const bad = (field: string, why: string) => new Error(`${source}: ${field}: ${why}`);
  if (j.peft_type !== "LORA") {
    throw bad("peft_type", `${JSON.stringify(j.peft_type)} is not a LoRA adapter ("LORA")`);
  }
  if (j.use_dora === true) throw bad("use_dora", "DoRA adapters are not supported");
  if (j.bias !== undefined && j.bias !== "none") {
    throw bad("bias", `${JSON.stringify(j.bias)}: only "none" (no trained biases) is supported`);
  }
  if (j.fan_in_fan_out === true) {
    throw bad("fan_in_fan_out", "transposed (Conv1D) bases are not supported");
  }
  for (const f of ["rank_pattern", "alpha_pattern"]) {
    const v = j[f];
    if (v !== undefined && v !== null && (typeof v !== "object" || Object.keys(v).length > 0)) {
      throw bad(f, "per-module ranks or alphas are not supported; one r and lora_alpha for all");
    }
  }
  if (typeof j.target_modules === "string") {
    throw bad(
      "target_modules",
      `a regular expression (${JSON.stringify(j.target_modules)}) is not supported; give a list`,
    );
  }
  if (!Array.isArray(j.target_modules)) {
    throw bad("target_modules", "missing (a list of module names)");
  }
  if (typeof j.r !== "number") throw bad("r", `missing or not a number (${JSON.stringify(j.r)})`);
  if (typeof j.lora_alpha !== "number") {
    throw bad("lora_alpha", `missing or not a number (${JSON.stringify(j.lora_alpha)})`);
  }
  const cfg: LoraAdapterConfig = {
    r: j.r,
    loraAlpha: j.lora_alpha,
    loraDropout: typeof j.lora_dropout === "number" ? j.lora_dropout : 0,
    targetModules: j.target_modules as string[],
    useRslora: j.use_rslora === true,
    baseModelNameOrPath: typeof j.base_model_name_or_path === "string"
      ? j.base_model_name_or_path
      : null,
  };
  checkConfig(cfg, source);
  return cfg;
}

/**
 * Writes `dir/adapter_model.safetensors` (F32) and `dir/adapter_config.json`, each atomically,
 * creating `dir`. Every adapter must have A (r, in) and B (out, r) with the config's r.
 */
export async function saveLoraAdapter(
  dir: string,
  config: LoraAdapterConfig,
  adapters: ReadonlyMap<string, HostLoraAdapter>,
): Promise<void> {
  const json = peftConfigJson(config);
  if (adapters.size === 0) throw new Error(`LoRA adapter ${dir}: no adapters to save`);
  const tensors = new Map<string, SafeTensor>();
  for (const [module, ad] of adapters) {
    checkAdapter(module, ad, config.r, `LoRA adapter ${dir}`);
    tensors.set(peftAdapterKey(module, "A"), {
      dtype: "F32",
      shape: [...ad.a.shape],
      data: ad.a.data,
    });
    tensors.set(peftAdapterKey(module, "B"), {
      dtype: "F32",
      shape: [...ad.b.shape],
      data: ad.b.data,
    });
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(`${dir}/${ADAPTER_WEIGHTS_FILE}`, tensors, { format: "pt" });
  await writeFileAtomic(`${dir}/${ADAPTER_CONFIG_FILE}`, json);
}

function checkAdapter(module: string, ad: HostLoraAdapter, r: number, source: string): void {
  const [ar, K] = ad.a.shape;
  const [N, br] = ad.b.shape;
  if (ad.a.shape.length !== 2 || ad.b.shape.length !== 2 || ar !== r || br !== r) {
    throw new Error(
      `${source}: module "${module}": lora_A must be (r = ${r}, in) and lora_B (out, r = ${r}); ` +
        `got [${ad.a.shape.join(", ")}] and [${ad.b.shape.join(", ")}]`,
    );
  }
  if (ad.a.data.length !== ar * K || ad.b.data.length !== N * br) {
    throw new Error(`${source}: module "${module}": data lengths do not match the shapes`);
  }
}

/** f32 values of an F32, F16 or BF16 tensor. */
function toF32(t: Required<SafeTensor>, key: string, source: string): Float32Array {
  switch (t.dtype) {
    case "F32":
      return t.data as Float32Array;
    case "F16":
      return Float32Array.from(new Float16Array((t.data as Uint16Array).buffer));
    case "BF16": {
      const u = t.data as Uint16Array;
      const out = new Uint32Array(u.length);
      for (let i = 0; i < u.length; i++) out[i] = u[i] << 16;
      return new Float32Array(out.buffer);
    }
    default:
      throw new Error(`${source}: "${key}" is ${t.dtype}; LoRA weights must be F32, F16 or BF16`);
  }
}

/**
 * Reads an adapter directory written by PEFT or {@link saveLoraAdapter}: the config
 * ({@link parsePeftConfig}) and every module's A and B, checked against it (known key form,
 * both matrices present, shapes (r, in) and (out, r), float dtype).
 */
export async function loadLoraAdapter(dir: string): Promise<LoraAdapterFile> {
  const cfgPath = `${dir}/${ADAPTER_CONFIG_FILE}`;
  const wPath = `${dir}/${ADAPTER_WEIGHTS_FILE}`;
  let text: string;
  try {
    text = await Deno.readTextFile(cfgPath);
  } catch (e) {
    throw new Error(
      `LoRA adapter ${dir}: cannot read ${ADAPTER_CONFIG_FILE}: ${(e as Error).message}`,
    );
  }
  const config = parsePeftConfig(text, cfgPath);
  let file;
  try {
    file = await readSafetensors(wPath);
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    throw new Error(
      `LoRA adapter ${dir}: cannot read ${ADAPTER_WEIGHTS_FILE}: ${(e as Error).message}`,
    );
  }
  const parts = new Map<string, Partial<HostLoraAdapter>>();
  for (const [key, t] of file.tensors) {
    const m = KEY.exec(key);
    if (!m) {
      throw new Error(
        `${wPath}: unexpected tensor "${key}": LoRA keys look like ` +
          `"${peftAdapterKey("model.layers.0.self_attn.q_proj", "A")}"`,
      );
    }
    if (t.shape.length !== 2) {
      throw new Error(`${wPath}: "${key}" must be 2-D, got [${t.shape.join(", ")}]`);
    }
    const p = parts.get(m[1]) ?? {};
    p[m[2] === "A" ? "a" : "b"] = {
      shape: [t.shape[0], t.shape[1]],
      data: toF32(t, key, wPath),
    };
    parts.set(m[1], p);
  }
  if (parts.size === 0) throw new Error(`${wPath}: holds no LoRA tensors`);
  const adapters = new Map<string, HostLoraAdapter>();
  for (const [module, p] of parts) {
    if (!p.a || !p.b) {
      throw new Error(
        `${wPath}: module "${module}" has lora_${p.a ? "A" : "B"} but no lora_${p.a ? "B" : "A"}`,
      );
    }
    checkAdapter(module, p as HostLoraAdapter, config.r, wPath);
    adapters.set(module, p as HostLoraAdapter);
  }
  return { config, adapters };
}

/** Host f32 copies of the layers' adapters (the f32 masters on a mixed-precision device). */
export async function readLoraLayers(
  dev: Device,
  layers: readonly LoraLinear[],
): Promise<Map<string, HostLoraAdapter>> {
  const out = new Map<string, HostLoraAdapter>();
  for (const l of layers) {
    const a = await dev.readF32(l.a.master ?? l.a.value);
    const b = await dev.readF32(l.b.master ?? l.b.value);
    out.set(l.name, {
      a: { shape: [l.a.shape[0], l.a.shape[1]], data: a },
      b: { shape: [l.b.shape[0], l.b.shape[1]], data: b },
    });
  }
  return out;
}

/**
 * Writes loaded adapters into `layers` (values, and masters when present): every layer must
 * have an adapter of its shape, every adapter a layer, and the config's scaling must be the
 * layers'. Throws naming the first mismatch, before writing anything.
 */
export function loadLoraLayers(
  dev: Device,
  layers: readonly LoraLinear[],
  file: LoraAdapterFile,
): void {
  const { r, loraAlpha, useRslora } = file.config;
  const s = useRslora ? loraAlpha / Math.sqrt(r) : loraAlpha / r;
  const byName = new Map(layers.map((l) => [l.name, l]));
  for (const l of layers) {
    const ad = file.adapters.get(l.name);
    if (!ad) throw new Error(`LoRA adapter: no adapter for module "${l.name}"`);
    const same = (x: readonly number[], y: readonly number[]) =>
      x.length === y.length && x.every((v, i) => v === y[i]);
    if (!same(ad.a.shape, l.a.shape) || !same(ad.b.shape, l.b.shape)) {
      throw new Error(
        `LoRA adapter: module "${l.name}": file has A [${ad.a.shape.join(", ")}], B [${
          ad.b.shape.join(", ")
        }]; the layer A [${l.a.shape.join(", ")}], B [${l.b.shape.join(", ")}]`,
      );
    }
    if (l.scaling !== s) {
      throw new Error(
        `LoRA adapter: module "${l.name}": the file's scaling ${s} (r ${r}, lora_alpha ${loraAlpha}${
          useRslora ? ", rsLoRA" : ""
        }) differs from the layer's ${l.scaling}`,
      );
    }
  }
  for (const m of file.adapters.keys()) {
    if (!byName.has(m)) {
      throw new Error(`LoRA adapter: module "${m}" has no LoRA layer in the model`);
    }
  }
  for (const l of layers) {
    const ad = file.adapters.get(l.name)!;
    for (const [p, h] of [[l.a, ad.a], [l.b, ad.b]] as const) {
      if (p.master) dev.write(p.master, h.data);
      dev.write(p.value, h.data);
    }
  }
}

/** {@link readLoraLayers} then {@link saveLoraAdapter}. */
export async function saveLoraLayers(
  dev: Device,
  dir: string,
  config: LoraAdapterConfig,
  layers: readonly LoraLinear[],
): Promise<void> {
  await saveLoraAdapter(dir, config, await readLoraLayers(dev, layers));
}
