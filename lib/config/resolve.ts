/**
 * `resolveConfig`: a preset plus overrides from a YAML file's text and `key=value` strings
 * (the `--set` flags of the tools), validated.
 *
 * Order: preset, then YAML, then `--set` (later wins). The YAML document is a flat mapping
 * of {@link ModelConfig} keys, e.g. `layers: 4` / `slidingWindow: 64`. In `--set` strings,
 * numbers and booleans (`true`/`false`) are parsed according to the key's type.
 *
 * Derived fields follow their inputs unless overridden themselves: when `hidden` or `heads`
 * change and the preset had hd = d/H, `headDim` becomes the new d/H; when `headDim` changes
 * (either way) and the preset had attnScale = hd^−1/2, `attnScale` becomes the new hd^−1/2.
 */

import { parse } from "@std/yaml";
import type { ModelConfig } from "./model_config.ts";
import { validateConfig } from "./derived.ts";
import { getPreset } from "./presets.ts";

/** Overrides applied on top of a preset. */
export interface ConfigOverrides {
  /** Text of a YAML file: a flat mapping of config keys to values. */
  yaml?: string;
  /** `key=value` strings, applied after the YAML. */
  set?: string[];
}

type KeyType =
  | { kind: "integer" }
  | { kind: "number" }
  | { kind: "boolean" }
  | { kind: "string" }
  | { kind: "enum"; values: readonly string[] };

/** Type of every config key (exhaustive: the compiler checks all keys are listed). */
const KEY_TYPES: { [K in keyof ModelConfig]-?: KeyType } = {
  name: { kind: "string" },
  family: { kind: "enum", values: ["llama3", "llama2", "mistral", "qwen2", "gemma2"] },
  vocabSize: { kind: "integer" },
  hidden: { kind: "integer" },
  intermediate: { kind: "integer" },
  layers: { kind: "integer" },
  heads: { kind: "integer" },
  kvHeads: { kind: "integer" },
  headDim: { kind: "integer" },
  ropeTheta: { kind: "number" },
  rmsEps: { kind: "number" },
  activation: { kind: "enum", values: ["silu", "gelu_tanh"] },
  tieEmbeddings: { kind: "boolean" },
  qkvBias: { kind: "boolean" },
  embeddingScale: { kind: "boolean" },
  normUnitOffset: { kind: "boolean" },
  postNorms: { kind: "boolean" },
  attnSoftcap: { kind: "number" },
  finalSoftcap: { kind: "number" },
  slidingWindow: { kind: "integer" },
  slidingWindowLayers: { kind: "enum", values: ["all", "alternate"] },
  attnScale: { kind: "number" },
};

function typeName(t: KeyType): string {
  return t.kind === "enum" ? t.values.map((v) => JSON.stringify(v)).join("|") : t.kind;
}

/** "key: type" for every config key, one per line, for error messages and `--help`. */
export function configKeysHelp(): string {
  return Object.entries(KEY_TYPES).map(([k, t]) => `  ${k}: ${typeName(t)}`).join("\n");
}

function isKey(key: string): key is keyof ModelConfig {
  return Object.hasOwn(KEY_TYPES, key);
}

function keyError(source: string, message: string): Error {
  return new Error(`${source}: ${message}\nvalid keys:\n${configKeysHelp()}`);
}

/** Checks a value already typed (from YAML) against the key's type. */
function checkValue(source: string, key: keyof ModelConfig, value: unknown): unknown {
  const t = KEY_TYPES[key];
  const bad = () =>
    keyError(
      source,
      `key "${key}" must be ${typeName(t)}, got ${JSON.stringify(value)} (${typeof value})`,
    );
  switch (t.kind) {
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value)) throw bad();
      return value;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) throw bad();
      return value;
    case "boolean":
      if (typeof value !== "boolean") throw bad();
      return value;
    case "string":
      if (typeof value !== "string") throw bad();
      return value;
    case "enum":
      if (typeof value !== "string" || !t.values.includes(value)) throw bad();
      return value;
  }
}

/** Parses a `--set` value string according to the key's type. */
function parseSetValue(source: string, key: keyof ModelConfig, text: string): unknown {
  const t = KEY_TYPES[key];
  const trimmed = text.trim();
  if (t.kind === "integer" || t.kind === "number") {
    const n = trimmed === "" ? NaN : Number(trimmed);
    return checkValue(source, key, Number.isNaN(n) ? text : n);
  }
  if (t.kind === "boolean") {
    if (trimmed === "true") return true;
    if (trimmed === "false") return false;
    return checkValue(source, key, text);
  }
  return checkValue(source, key, trimmed);
}

function parseYamlOverrides(text: string): Partial<Record<keyof ModelConfig, unknown>> {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new Error(`config YAML does not parse: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new Error(
      `config YAML must be a mapping of config keys to values (e.g. "layers: 4"), got ${
        Array.isArray(doc) ? "a list" : typeof doc
      }`,
    );
  }
  const out: Partial<Record<keyof ModelConfig, unknown>> = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (!isKey(key)) throw keyError("config YAML", `unknown key "${key}"`);
    out[key] = checkValue("config YAML", key, value);
  }
  return out;
}

function parseSetOverrides(set: string[]): Partial<Record<keyof ModelConfig, unknown>> {
  const out: Partial<Record<keyof ModelConfig, unknown>> = {};
  for (const item of set) {
    const eq = item.indexOf("=");
    if (eq <= 0) {
      throw keyError(`--set ${item}`, `expected key=value (e.g. --set layers=4)`);
    }
    const key = item.slice(0, eq).trim();
    if (!isKey(key)) throw keyError(`--set ${item}`, `unknown key "${key}"`);
    out[key] = parseSetValue(`--set ${item}`, key, item.slice(eq + 1));
  }
  return out;
}

/**
 * The preset `presetName` with the overrides applied (YAML first, then `set`), derived
 * fields updated (module doc) and validated.
 * @throws Error for an unknown preset (listing presets), an unknown key or a value of the
 *   wrong type (naming the key and listing valid keys with their types), unparsable YAML,
 *   or an invalid resulting config ({@link validateConfig}).
 */
export function resolveConfig(presetName: string, overrides: ConfigOverrides = {}): ModelConfig {
  const preset = getPreset(presetName);
  const changes = {
    ...(overrides.yaml !== undefined ? parseYamlOverrides(overrides.yaml) : {}),
    ...parseSetOverrides(overrides.set ?? []),
  };
  const cfg = { ...preset, ...changes } as ModelConfig;
  const has = (k: keyof ModelConfig) => Object.hasOwn(changes, k);
  if (
    !has("headDim") && (has("hidden") || has("heads")) &&
    preset.headDim * preset.heads === preset.hidden && cfg.heads > 0 &&
    Number.isInteger(cfg.hidden / cfg.heads)
  ) {
    cfg.headDim = cfg.hidden / cfg.heads;
  }
  if (
    !has("attnScale") && cfg.headDim !== preset.headDim &&
    Math.abs(preset.attnScale - preset.headDim ** -0.5) < 1e-12
  ) {
    cfg.attnScale = cfg.headDim ** -0.5;
  }
  validateConfig(cfg);
  return cfg;
}
