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

import type { ModelConfig } from "./model_config.ts";
import { validateConfig } from "./derived.ts";
import { getPreset } from "./presets.ts";
import {
  keyError,
  type KeyRule,
  literalRule,
  readYamlMapping,
  splitSetItem,
  typeRule,
} from "./rules.ts";

/** Overrides applied on top of a preset. */
export interface ConfigOverrides {
  /** Text of a YAML file: a flat mapping of config keys to values. */
  yaml?: string;
  /** `key=value` strings, applied after the YAML. */
  set?: string[];
}

const integer = typeRule("integer");
const number = typeRule("number");
const boolean = typeRule("boolean");

/** The rule of every config key (exhaustive: the compiler checks all keys are listed). */
const KEY_RULES: { [K in keyof ModelConfig]-?: KeyRule<unknown> } = {
  name: typeRule("string"),
  family: literalRule(["llama3", "llama2", "mistral", "qwen2", "gemma2"]),
  vocabSize: integer,
  hidden: integer,
  intermediate: integer,
  layers: integer,
  heads: integer,
  kvHeads: integer,
  headDim: integer,
  ropeTheta: number,
  rmsEps: number,
  activation: literalRule(["silu", "gelu_tanh"]),
  tieEmbeddings: boolean,
  qkvBias: boolean,
  embeddingScale: boolean,
  normUnitOffset: boolean,
  postNorms: boolean,
  attnSoftcap: number,
  finalSoftcap: number,
  slidingWindow: integer,
  slidingWindowLayers: literalRule(["all", "alternate"]),
  attnScale: number,
};

/** "key: type" for every config key, one per line, for error messages and `--help`. */
export function configKeysHelp(): string {
  return Object.entries(KEY_RULES).map(([k, r]) => `  ${k}: ${r.expected}`).join("\n");
}

function isKey(key: string): key is keyof ModelConfig {
  return Object.hasOwn(KEY_RULES, key);
}

/** Checks a value already typed (from YAML, or read from `--set`) against the key's rule. */
function checkValue(source: string, key: keyof ModelConfig, value: unknown): unknown {
  const rule = KEY_RULES[key];
  const v = rule.check(value);
  if (v === null) {
    throw keyError(
      source,
      `key "${key}" must be ${rule.expected}, got ${JSON.stringify(value)} (${typeof value})`,
      configKeysHelp(),
    );
  }
  return v;
}

function parseYamlOverrides(text: string): Partial<Record<keyof ModelConfig, unknown>> {
  const doc = readYamlMapping(
    text,
    (message) => new Error(`config YAML does not parse: ${message}`),
    (got) =>
      new Error(
        `config YAML must be a mapping of config keys to values (e.g. "layers: 4"), got ${got}`,
      ),
  );
  const out: Partial<Record<keyof ModelConfig, unknown>> = {};
  for (const [key, value] of Object.entries(doc)) {
    if (!isKey(key)) throw keyError("config YAML", `unknown key "${key}"`, configKeysHelp());
    out[key] = checkValue("config YAML", key, value);
  }
  return out;
}

function parseSetOverrides(set: string[]): Partial<Record<keyof ModelConfig, unknown>> {
  const out: Partial<Record<keyof ModelConfig, unknown>> = {};
  for (const item of set) {
    const source = `--set ${item}`;
    const kv = splitSetItem(item);
    if (!kv) throw keyError(source, `expected key=value (e.g. --set layers=4)`, configKeysHelp());
    if (!isKey(kv.key)) throw keyError(source, `unknown key "${kv.key}"`, configKeysHelp());
    // an unreadable text is refused as the text itself ("layers=four": got "four" (string))
    out[kv.key] = checkValue(source, kv.key, KEY_RULES[kv.key].read(kv.text.trim()) ?? kv.text);
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
