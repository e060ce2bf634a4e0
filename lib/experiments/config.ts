/**
 * Experiment configuration: a flat mapping whose defaults fix every key's type, layered as
 * defaults ← quick overrides (with `--quick`) ← a YAML file (`--config f.yaml`) ← `key=value`
 * strings (`--set`), later wins.
 *
 * Values are numbers, strings, booleans, or non-empty arrays of numbers or strings. A key
 * that is not in the defaults is rejected with the list of valid keys and their types; a
 * value of the wrong type is rejected naming the key, the source and the expected type.
 * In `--set`, arrays are written `256,512,1024` or `[256, 512, 1024]`.
 */

import { parse } from "@std/yaml";

/** One config value. */
export type ConfigValue = number | string | boolean | number[] | string[];

/** A flat experiment config. */
export type ExperimentConfig = Record<string, ConfigValue>;

type Kind = "number" | "string" | "boolean" | "number[]" | "string[]";

function kindOf(v: unknown): Kind | null {
  if (typeof v === "number") return Number.isFinite(v) ? "number" : null;
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "boolean";
  if (Array.isArray(v) && v.length > 0) {
    if (v.every((x) => typeof x === "number" && Number.isFinite(x))) return "number[]";
    if (v.every((x) => typeof x === "string")) return "string[]";
  }
  return null;
}

/** Throws unless every default is a valid {@link ConfigValue} (called by `defineExperiment`). */
export function validateDefaults(name: string, defaults: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(defaults)) {
    if (kindOf(v) === null) {
      throw new Error(
        `experiment "${name}": default "${k}" = ${JSON.stringify(v)} is not a number, string, ` +
          `boolean, or non-empty array of numbers or strings`,
      );
    }
  }
}

/** "key: type (default)" for every key, one per line, for errors and `--help`. */
export function configKeysHelp(defaults: ExperimentConfig): string {
  return Object.entries(defaults).map(([k, v]) =>
    `  ${k}: ${kindOf(v)} (default ${JSON.stringify(v)})`
  ).join("\n");
}

function keyError(defaults: ExperimentConfig, source: string, message: string): Error {
  return new Error(`${source}: ${message}\nvalid keys:\n${configKeysHelp(defaults)}`);
}

/** Checks an already typed value (YAML, quick overrides) against the key's default. */
function checkTyped(
  defaults: ExperimentConfig,
  source: string,
  key: string,
  value: unknown,
): ConfigValue {
  if (!Object.hasOwn(defaults, key)) {
    throw keyError(defaults, source, `unknown key "${key}"`);
  }
  const want = kindOf(defaults[key]);
  // YAML reads `name: 123` as a number: a string key takes it as written.
  if (want === "string" && typeof value === "number") return String(value);
  if (want === "string[]" && Array.isArray(value) && value.every((x) => typeof x !== "object")) {
    return value.map(String);
  }
  if (kindOf(value) !== want) {
    throw keyError(
      defaults,
      source,
      `"${key}" must be ${want}, got ${JSON.stringify(value)}`,
    );
  }
  return value as ConfigValue;
}

function parseNumberText(text: string): number | null {
  const n = Number(text);
  return text.trim() !== "" && Number.isFinite(n) ? n : null;
}

/** Parses one `--set` value by the key's type. */
function parseSetValue(defaults: ExperimentConfig, key: string, text: string): ConfigValue {
  const source = `--set ${key}=${text}`;
  if (!Object.hasOwn(defaults, key)) throw keyError(defaults, source, `unknown key "${key}"`);
  const want = kindOf(defaults[key]);
  const bad = () => keyError(defaults, source, `"${key}" must be ${want}, got "${text}"`);
  switch (want) {
    case "number": {
      const n = parseNumberText(text);
      if (n === null) throw bad();
      return n;
    }
    case "boolean":
      if (text === "true") return true;
      if (text === "false") return false;
      throw bad();
    case "string":
      return text;
    default: {
      const inner = text.trim().replace(/^\[(.*)\]$/s, "$1");
      const parts = inner.split(",").map((s) => s.trim()).filter((s) => s !== "");
      if (parts.length === 0) throw bad();
      if (want === "string[]") return parts;
      const nums = parts.map(parseNumberText);
      if (nums.some((n) => n === null)) throw bad();
      return nums as number[];
    }
  }
}

/** Where a config comes from, lowest priority first after the defaults. */
export interface ConfigLayers<C extends ExperimentConfig> {
  /** Overrides applied with `--quick`. */
  quick?: Partial<C>;
  /** Text of a YAML file: a flat mapping of keys to values. */
  yaml?: string;
  /** Name of that file, for messages. */
  yamlSource?: string;
  /** `key=value` strings. */
  set?: readonly string[];
}

/** Resolves a config: defaults ← quick ← YAML ← `--set`, each value checked. */
export function resolveExperimentConfig<C extends ExperimentConfig>(
  defaults: C,
  layers: ConfigLayers<C> = {},
): C {
  const out: ExperimentConfig = { ...defaults };
  for (const [k, v] of Object.entries(layers.quick ?? {})) {
    out[k] = checkTyped(defaults, "quick overrides", k, v);
  }
  if (layers.yaml !== undefined) {
    const source = layers.yamlSource ?? "--config";
    let doc: unknown;
    try {
      doc = parse(layers.yaml);
    } catch (e) {
      throw new Error(`${source}: not valid YAML (${(e as Error).message})`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== "object" || Array.isArray(doc)) {
        throw keyError(defaults, source, "expected a mapping of config keys to values");
      }
      for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
        out[k] = checkTyped(defaults, source, k, v);
      }
    }
  }
  for (const s of layers.set ?? []) {
    const eq = s.indexOf("=");
    if (eq <= 0) {
      throw keyError(defaults, `--set ${s}`, `expected key=value`);
    }
    const key = s.slice(0, eq).trim();
    out[key] = parseSetValue(defaults, key, s.slice(eq + 1).trim());
  }
  return out as C;
}

/** The config as YAML (readable back by `--config`). */
export function configToYaml(config: ExperimentConfig, header?: string): string {
  // JSON scalars and flow arrays are valid YAML; one key per line keeps diffs readable.
  const body = Object.entries(config).map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`).join("");
  const comment = header ? header.split("\n").map((l) => `# ${l}`).join("\n") + "\n" : "";
  return comment + body;
}
