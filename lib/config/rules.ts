/**
 * Config rules: how one config key's value is read from text (`--set key=value`), checked (YAML,
 * `--quick` overrides, defaults) and described (`--help`, errors). One module for both configs
 * that take `--config` YAML and `--set`: a model's overrides (`resolve.ts`: {@link typeRule},
 * {@link literalRule}, no defaults: the preset is the default) and an experiment's config
 * (`lib/experiments/config.ts`: {@link ConfigRule}s that carry their default). Each of those
 * builds its own key list for `--help` from the rules.
 *
 * An experiment's rules are written where its defaults are. A key of `defaults` is either a
 * plain value (number, string, boolean, non-empty number[] or string[]: only its type is
 * checked) or a rule built here, which carries its default, the allowed values and an optional
 * line of documentation (`defineExperiment` is `lib/experiments/define.ts`'s):
 *
 * ```ts
 * export default defineExperiment({
 *   name: "sweep",
 *   description: "a sweep over S",
 *   defaults: {
 *     steps: int(20, { min: 1, doc: "training steps per point" }),
 *     seqs: ints([256, 512], { min: 2 }),
 *     data: oneOf("brown", ["brown", "repeat"]),
 *     budget: bytes("80GiB"),
 *     lr: 3e-3, // a plain value: any number
 *   },
 *   run(ctx) {
 *     const data: "brown" | "repeat" = ctx.config.data;
 *     ctx.log(`${ctx.config.steps} steps on ${data} at S = ${ctx.config.seqs.join(", ")}`);
 *   },
 * });
 * ```
 *
 * `lib/experiments/config.ts` checks every value (defaults, `--quick` overrides, `--config`
 * YAML, `--set`) against its key's rule before the run starts; `deno task exp <name> --help`
 * prints the rules. A rule's value in `ctx.config` has the rule's type:
 * `oneOf("brown", ["brown", "repeat"])` gives `"brown" | "repeat"`. {@link bytes} keeps the text
 * as written (`"80GiB"`: config.yaml and report labels show what was typed); `parseBytes` of it
 * cannot fail once checked.
 */

import { parse } from "@std/yaml";
import { type FloatCounting, parseBytes } from "../device/dtype.ts";
import { PRESET_NAMES } from "./presets.ts";

/** One config value of an experiment. */
export type ConfigValue = number | string | boolean | number[] | string[];

/**
 * How one key's values are read from text, checked and described; {@link ConfigRule} adds a
 * default. Built by {@link typeRule} and {@link literalRule} (a model's override keys).
 */
export class KeyRule<T> {
  /**
   * A rule; the builders below are the usual way to make one.
   *
   * @param expected The allowed values, in words ("an integer ≥ 1"), for errors and `--help`.
   * @param reader Reads a `--set` text into a value for {@link KeyRule.check} (`undefined`
   *   when unreadable).
   * @param accept The value as the config holds it, or null when `value` is not allowed.
   * @param doc One line for `--help`.
   */
  constructor(
    readonly expected: string,
    private readonly reader: (text: string) => unknown,
    private readonly accept: (value: unknown) => T | null,
    readonly doc?: string,
  ) {}

  /** A typed value (YAML, `--quick`, a default) as the config holds it, or null if not allowed. */
  check(value: unknown): T | null {
    return this.accept(value);
  }

  /** A `--set` text read into a value (not yet checked), or undefined when unreadable. */
  read(text: string): unknown {
    return this.reader(text);
  }

  /** A `--set` text as the config holds it, or null if not allowed. */
  parse(text: string): T | null {
    const v = this.reader(text);
    return v === undefined ? null : this.accept(v);
  }
}

/**
 * The rule of one experiment config key: its default and the values it allows.
 *
 * Built by {@link int}, {@link num}, {@link ints}, {@link oneOf}, {@link someOf},
 * {@link bytes}, {@link preset}, {@link presets}, {@link dtype}, {@link chunks} and
 * {@link bool}; plain defaults get a type-only rule ({@link plainRule}).
 */
export class ConfigRule<T extends ConfigValue> extends KeyRule<T> {
  /**
   * A rule; the builders below are the usual way to make one.
   *
   * @param defaultValue The default.
   * @param expected The allowed values, in words ("an integer ≥ 1"), for errors and `--help`.
   * @param read Reads a `--set` text into a value for {@link KeyRule.check} (`undefined`
   *   when unreadable).
   * @param accept The value as the config holds it, or null when `value` is not allowed.
   * @param doc One line for `--help`.
   */
  constructor(
    readonly defaultValue: T,
    expected: string,
    read: (text: string) => unknown,
    accept: (value: unknown) => T | null,
    doc?: string,
  ) {
    super(expected, read, accept, doc);
  }
}

/** Options every rule takes. */
export interface RuleOptions {
  /** One line for `--help`: what the key means. */
  doc?: string;
}

/** Bounds of a number: `min`/`max` inclusive, `above`/`below` exclusive. */
export interface RangeOptions extends RuleOptions {
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
  /** Values must be greater than this. */
  above?: number;
  /** Values must be less than this. */
  below?: number;
}

// ---- reading text and typed values -------------------------------------------------------

function numberFromText(text: string): number | undefined {
  const n = Number(text);
  return text.trim() !== "" && Number.isFinite(n) ? n : undefined;
}

/** `256,512`, `[256, 512]` → the trimmed parts, or undefined when there are none. */
function listFromText(text: string): string[] | undefined {
  const inner = text.trim().replace(/^\[(.*)\]$/s, "$1");
  const parts = inner.split(",").map((s) => s.trim()).filter((s) => s !== "");
  return parts.length > 0 ? parts : undefined;
}

function numbersFromText(text: string): number[] | undefined {
  const parts = listFromText(text);
  if (!parts) return undefined;
  const nums = parts.map(numberFromText);
  return nums.some((n) => n === undefined) ? undefined : nums as number[];
}

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** YAML reads `name: 123` as a number: a string key takes it as written. */
const asString = (v: unknown): string | null =>
  typeof v === "string" ? v : isNumber(v) ? String(v) : null;

// ---- plain values: type only ---------------------------------------------------------------

type Kind = "number" | "string" | "boolean" | "number[]" | "string[]";

/** The type of a plain default, or null when it is not a {@link ConfigValue}. */
export function kindOf(v: unknown): Kind | null {
  if (typeof v === "number") return Number.isFinite(v) ? "number" : null;
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "boolean";
  if (Array.isArray(v) && v.length > 0) {
    if (v.every(isNumber)) return "number[]";
    if (v.every((x) => typeof x === "string")) return "string[]";
  }
  return null;
}

/** The kinds of {@link typeRule}. */
export type TypeKind = Kind | "integer";

/**
 * Any value of one type (`typeRule("integer")`); its words are the type's name ("integer",
 * "number[]"…). In `--set`, numbers, booleans (`true`/`false`) and lists (`1,2` or `[1, 2]`) are
 * read by the type.
 */
export function typeRule(kind: TypeKind): KeyRule<ConfigValue> {
  const read = (text: string): unknown => {
    switch (kind) {
      case "integer":
      case "number":
        return numberFromText(text);
      case "boolean":
        return text === "true" ? true : text === "false" ? false : undefined;
      case "string":
        return text;
      case "number[]":
        return numbersFromText(text);
      default:
        return listFromText(text);
    }
  };
  const accept = (v: unknown): ConfigValue | null => {
    if (kind === "integer") return isNumber(v) && Number.isInteger(v) ? v : null;
    if (kind === "string") return asString(v);
    if (kind === "string[]" && Array.isArray(v) && v.every((x) => typeof x !== "object")) {
      return v.length > 0 ? v.map(String) : null;
    }
    return kindOf(v) === kind ? v as ConfigValue : null;
  };
  return new KeyRule(kind, read, accept);
}

/** One of a fixed list of strings, written `"a"|"b"` (`literalRule(["silu", "gelu_tanh"])`). */
export function literalRule<const T extends string>(values: readonly T[]): KeyRule<T> {
  return new KeyRule(
    values.map((v) => JSON.stringify(v)).join("|"),
    (text) => text,
    (v) => values.find((x) => x === v) ?? null,
  );
}

/** The type-only rule of a plain default: any value of the default's type. */
export function plainRule<T extends ConfigValue>(value: T): ConfigRule<T> {
  const kind = kindOf(value);
  if (kind === null) {
    return new ConfigRule(value, "a config value", () => undefined, () => null);
  }
  const rule = typeRule(kind);
  return new ConfigRule(
    value,
    kind,
    (text) => rule.read(text),
    (v) => rule.check(v) as T | null,
  );
}

// ---- numbers -------------------------------------------------------------------------------

function rangeWords(o: RangeOptions): string[] {
  const w: string[] = [];
  if (o.min !== undefined) w.push(`≥ ${o.min}`);
  if (o.above !== undefined) w.push(`> ${o.above}`);
  if (o.max !== undefined) w.push(`≤ ${o.max}`);
  if (o.below !== undefined) w.push(`< ${o.below}`);
  return w;
}

function inRange(n: number, o: RangeOptions): boolean {
  return (o.min === undefined || n >= o.min) && (o.max === undefined || n <= o.max) &&
    (o.above === undefined || n > o.above) && (o.below === undefined || n < o.below);
}

function numberRule(integer: boolean, value: number, o: RangeOptions): ConfigRule<number> {
  const what = [integer ? "an integer" : "a number", ...rangeWords(o)].join(" ");
  const accept = (v: unknown) =>
    isNumber(v) && (!integer || Number.isInteger(v)) && inRange(v, o) ? v : null;
  return new ConfigRule(value, what, numberFromText, accept, o.doc);
}

/** An integer, optionally bounded: `int(20, { min: 1 })`. */
export function int(value: number, options: RangeOptions = {}): ConfigRule<number> {
  return numberRule(true, value, options);
}

/** A finite number, optionally bounded: `num(3e-3, { above: 0 })`. */
export function num(value: number, options: RangeOptions = {}): ConfigRule<number> {
  return numberRule(false, value, options);
}

/**
 * A non-empty list of integers, each bounded: `ints([256, 512], { min: 2 })`. In `--set`,
 * written `256,512` or `[256, 512]`.
 */
export function ints(value: number[], options: RangeOptions = {}): ConfigRule<number[]> {
  const each = ["integers", ...rangeWords(options)].join(" ");
  const accept = (v: unknown) =>
    Array.isArray(v) && v.length > 0 &&
      v.every((x) => isNumber(x) && Number.isInteger(x) && inRange(x, options))
      ? v as number[]
      : null;
  return new ConfigRule(
    value,
    `a non-empty list of ${each} (e.g. 256,512)`,
    numbersFromText,
    accept,
    options.doc,
  );
}

// ---- choices -------------------------------------------------------------------------------

function choiceRule<T extends string | number>(
  value: T,
  choices: readonly T[],
  prefix: string,
  doc?: string,
): ConfigRule<T> {
  const accept = (v: unknown): T | null => {
    // YAML may read a choice "8" as 8 and --set gives text: compare as written
    const s = asString(v);
    return s === null ? null : choices.find((c) => String(c) === s) ?? null;
  };
  return new ConfigRule(
    value,
    `${prefix}one of ${choices.join(", ")}`,
    (text) => text,
    accept,
    doc,
  );
}

/** One of a fixed list of strings or numbers: `oneOf("brown", ["brown", "repeat"])`. */
export function oneOf<const T extends string | number>(
  value: NoInfer<T>,
  choices: readonly T[],
  options: RuleOptions = {},
): ConfigRule<T> {
  if (choices.length === 0) throw new Error("oneOf: give at least one choice");
  return choiceRule(value, choices, "", options.doc);
}

/**
 * A non-empty list of strings, each one of a fixed list: `someOf(["a", "b"], ["a", "b", "c"])`.
 * In `--set`, written `a,c` or `[a, c]`.
 */
export function someOf<const T extends string>(
  value: NoInfer<T>[],
  choices: readonly T[],
  options: RuleOptions = {},
): ConfigRule<T[]> {
  if (choices.length === 0) throw new Error("someOf: give at least one choice");
  const accept = (v: unknown): T[] | null => {
    if (!Array.isArray(v) || v.length === 0) return null;
    const out = v.map((x) => choices.find((c) => c === asString(x)));
    return out.every((x) => x !== undefined) ? out as T[] : null;
  };
  return new ConfigRule(
    value,
    `a non-empty list, each one of ${choices.join(", ")} (e.g. ${choices.slice(0, 2).join(",")})`,
    listFromText,
    accept,
    options.doc,
  );
}

/** A non-empty list of model preset names: `presets(["llama3-tiny", "gemma2-tiny"])`. */
export function presets(value: string[], options: RuleOptions = {}): ConfigRule<string[]> {
  return someOf(value, PRESET_NAMES, options);
}

/** A model preset name of the registry (`lib/config/presets.ts`): `preset("llama3-tiny")`. */
export function preset(value: string, options: RuleOptions = {}): ConfigRule<string> {
  return choiceRule(value, PRESET_NAMES, "a model preset: ", options.doc);
}

/** The float counting of the planner and meta device. */
export const DTYPES: readonly FloatCounting[] = ["f32", "f16", "bf16"];

/** How floats are counted: f32, f16 or bf16 (`dtype("bf16")`). */
export function dtype(value: FloatCounting, options: RuleOptions = {}): ConfigRule<FloatCounting> {
  return choiceRule(value, DTYPES, "", options.doc);
}

/** True or false, with a line of documentation (a plain boolean default needs none). */
export function bool(value: boolean, options: RuleOptions = {}): ConfigRule<boolean> {
  return new ConfigRule(
    value,
    "true or false",
    (text) => text === "true" ? true : text === "false" ? false : undefined,
    (v) => typeof v === "boolean" ? v : null,
    options.doc,
  );
}

// ---- bytes and chunk counts ----------------------------------------------------------------

/** Options of {@link bytes}. */
export interface BytesOptions extends RuleOptions {
  /** Smallest allowed byte count (default 1). */
  min?: number;
}

/**
 * A byte count written with its unit (`80GiB`, `80GB`, `512MiB`, `1e9B`), read as the CLI's
 * `--budget` is (`parseBytes`). The config keeps the text; at least `min` bytes (default 1).
 */
export function bytes(value: string, options: BytesOptions = {}): ConfigRule<string> {
  const min = options.min ?? 1;
  const accept = (v: unknown): string | null => {
    const s = asString(v);
    if (s === null) return null;
    try {
      return parseBytes(s) >= min ? s : null;
    } catch {
      return null;
    }
  };
  return new ConfigRule(
    value,
    `a byte count ≥ ${min} B: a number with its unit B, KB, MB, GB, TB (powers of 10) or KiB, ` +
      `MiB, GiB, TiB (powers of 2), e.g. 80GiB, 80GB, 512MiB; a bare number is refused`,
    (text) => text,
    accept,
    options.doc,
  );
}

/** MsT chunk counts (`Chunks` of `lib/mst/chunking.ts`): `"auto"` or an integer M ≥ 1 (`chunks("auto")`). */
export function chunks(
  value: number | "auto",
  options: RuleOptions = {},
): ConfigRule<number | "auto"> {
  const accept = (v: unknown): number | "auto" | null =>
    v === "auto" ? "auto" : isNumber(v) && Number.isInteger(v) && v >= 1 ? v : null;
  return new ConfigRule(
    value,
    `"auto" or an integer ≥ 1`,
    (text) => text === "auto" ? "auto" : numberFromText(text),
    accept,
    options.doc,
  );
}

// ---- reading a flat config: YAML mapping, `key=value` --------------------------------------

/**
 * The flat mapping of a YAML document (`{}` when it is empty). `syntax` makes the error for text
 * that does not parse (given the parser's message), `shape` the one for a document that is not a
 * mapping (given "a list" or its type).
 */
export function readYamlMapping(
  text: string,
  syntax: (message: string) => Error,
  shape: (got: string) => Error,
): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw syntax((e as Error).message);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw shape(Array.isArray(doc) ? "a list" : typeof doc);
  }
  return doc as Record<string, unknown>;
}

/** `key=value` split at the first `=` (the key trimmed), or null when there is no key. */
export function splitSetItem(item: string): { key: string; text: string } | null {
  const eq = item.indexOf("=");
  return eq <= 0 ? null : { key: item.slice(0, eq).trim(), text: item.slice(eq + 1) };
}

/** An error about a key: `source: message`, then the valid keys (`help`, one per line). */
export function keyError(source: string, message: string, help: string): Error {
  return new Error(`${source}: ${message}\nvalid keys:\n${help}`);
}
