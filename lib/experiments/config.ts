/**
 * Experiment configuration: a flat mapping whose defaults fix every key's type and allowed
 * values, layered as defaults ← quick overrides (with `--quick`) ← a YAML file
 * (`--config f.yaml`) ← `key=value` strings (`--set`), later wins.
 *
 * Values are numbers, strings, booleans, or non-empty arrays of numbers or strings. A default
 * is either a plain value (only the type is checked) or a rule of `lib/config/rules.ts` (ranges, choices,
 * byte counts, presets…). Every value of every layer is checked before the run starts: a key
 * that is not in the defaults is rejected with the list of valid keys and what they allow; a
 * value its rule refuses is rejected naming the source, the key, the value and the allowed
 * values. In `--set`, arrays are written `256,512,1024` or `[256, 512, 1024]`.
 */

import {
  ConfigRule,
  type ConfigValue,
  keyError as keyErrorWith,
  kindOf,
  plainRule,
  readYamlMapping,
  splitSetItem,
} from "../config/rules.ts";

/** A flat experiment config. */
export type ExperimentConfig = Record<string, ConfigValue>;

/** One key of an experiment's defaults: a plain value (its type is checked) or a rule. */
export type ConfigDefault = ConfigValue | ConfigRule<ConfigValue>;

/** An experiment's defaults: every config key, with a plain default or a {@link ConfigRule}. */
export type ExperimentDefaults = Record<string, ConfigDefault>;

/** The config that `defaults` describe: each rule's value type, each plain value's type. */
export type ConfigOf<D extends ExperimentDefaults> = {
  -readonly [K in keyof D]: D[K] extends ConfigRule<infer T extends ConfigValue> ? T
    : D[K] extends ConfigValue ? D[K]
    : never;
};

/** Defaults describing the config `C`: each key a plain value or a rule of its type. */
export type ConfigSpec<C extends ExperimentConfig> = { [K in keyof C]: C[K] | ConfigRule<C[K]> };

/** The rule of one key: its own, or the type-only rule of a plain default. */
function ruleOf(d: ConfigDefault): ConfigRule<ConfigValue> {
  return d instanceof ConfigRule ? d : plainRule(d);
}

const show = (v: unknown) => JSON.stringify(v);

/**
 * Throws unless every default is a valid {@link ConfigValue} allowed by its rule, and every
 * `quick` override names a key and is allowed (called by `defineExperiment`, so a broken
 * experiment fails when it is loaded, `--help` and `--list` included).
 */
export function validateDefaults(
  name: string,
  defaults: ExperimentDefaults,
  quick?: Record<string, unknown>,
): void {
  for (const [k, d] of Object.entries(defaults)) {
    if (!(d instanceof ConfigRule) && kindOf(d) === null) {
      throw new Error(
        `experiment "${name}": default "${k}" = ${show(d)} is not a number, string, ` +
          `boolean, or non-empty array of numbers or strings`,
      );
    }
    const rule = ruleOf(d);
    if (rule.check(rule.defaultValue) === null) {
      throw valueError(`experiment "${name}" defaults`, k, rule, show(rule.defaultValue));
    }
  }
  for (const [k, v] of Object.entries(quick ?? {})) {
    checkTyped(defaults, `experiment "${name}" quick overrides`, k, v);
  }
}

/**
 * Every key, one per line, for errors and `--help`: "key: allowed values (default …)",
 * then the key's documentation, if any, indented on the next line.
 */
export function configKeysHelp(defaults: ExperimentDefaults): string {
  return Object.entries(defaults).map(([k, d]) => {
    const rule = ruleOf(d);
    const line = `  ${k}: ${rule.expected} (default ${show(rule.defaultValue)})`;
    return rule.doc ? `${line}\n      ${rule.doc}` : line;
  }).join("\n");
}

/** The defaults as a plain config (each rule's default). */
function defaultConfig<C extends ExperimentConfig>(defaults: ConfigSpec<C>): C {
  return Object.fromEntries(
    Object.entries(defaults).map(([k, d]) => [k, ruleOf(d as ConfigDefault).defaultValue]),
  ) as C;
}

function keyError(defaults: ExperimentDefaults, source: string, message: string): Error {
  return keyErrorWith(source, message, configKeysHelp(defaults));
}

/** A value that breaks its key's rule: names the source, the key, the value and what is allowed. */
function valueError(
  source: string,
  key: string,
  rule: ConfigRule<ConfigValue>,
  shown: string,
): Error {
  return new Error(
    `${source}: "${key}" must be ${rule.expected}, got ${shown}` +
      (rule.doc ? `\n  ${key}: ${rule.doc}` : ""),
  );
}

function ruleFor(defaults: ExperimentDefaults, source: string, key: string) {
  if (!Object.hasOwn(defaults, key)) throw keyError(defaults, source, `unknown key "${key}"`);
  return ruleOf(defaults[key]);
}

/** Checks an already typed value (YAML, quick overrides) against the key's rule. */
function checkTyped(
  defaults: ExperimentDefaults,
  source: string,
  key: string,
  value: unknown,
): ConfigValue {
  const rule = ruleFor(defaults, source, key);
  const v = rule.check(value);
  if (v === null) throw valueError(source, key, rule, show(value));
  return v;
}

/** Parses one `--set` value by the key's rule. */
function parseSetValue(defaults: ExperimentDefaults, key: string, text: string): ConfigValue {
  const source = `--set ${key}=${text}`;
  const rule = ruleFor(defaults, source, key);
  const v = rule.parse(text);
  if (v === null) throw valueError(source, key, rule, `"${text}"`);
  return v;
}

/** Where a config comes from, lowest priority first after the defaults. */
export interface ConfigLayers<C extends ExperimentConfig> {
  /** Overrides applied with `--quick`. */
  quick?: Partial<C>;
  /** Text of a YAML file: a flat mapping of keys to values. */
  yaml?: string;
  /** Name of that file, for messages (shown as `--config <name>`). */
  yamlSource?: string;
  /** `key=value` strings. */
  set?: readonly string[];
}

/**
 * Resolves a config: defaults ← quick ← YAML ← `--set`, each value checked against its key's
 * rule (range, choices, or the plain default's type). Throws at the first bad key or value,
 * naming the source, the key, the value and what is allowed; nothing has run yet.
 */
export function resolveExperimentConfig<C extends ExperimentConfig>(
  spec: ConfigSpec<C>,
  layers: ConfigLayers<C> = {},
): C {
  const defaults = spec as unknown as ExperimentDefaults;
  const out: ExperimentConfig = defaultConfig(spec);
  for (const [k, v] of Object.entries(layers.quick ?? {})) {
    out[k] = checkTyped(defaults, "quick overrides", k, v);
  }
  if (layers.yaml !== undefined) {
    const source = layers.yamlSource === undefined ? "--config" : `--config ${layers.yamlSource}`;
    const doc = readYamlMapping(
      layers.yaml,
      (message) => new Error(`${source}: not valid YAML (${message})`),
      () => keyError(defaults, source, "expected a mapping of config keys to values"),
    );
    for (const [k, v] of Object.entries(doc)) out[k] = checkTyped(defaults, source, k, v);
  }
  for (const s of layers.set ?? []) {
    const kv = splitSetItem(s);
    if (!kv) throw keyError(defaults, `--set ${s}`, `expected key=value`);
    out[kv.key] = parseSetValue(defaults, kv.key, kv.text.trim());
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
