/**
 * Command-line parsing shared by the tasks (`train`, `plan`): model, policy and device
 * flags, with errors that name the flag and the accepted values.
 */

import { parseArgs } from "node:util";
import { describeBytes, parseBytes } from "../device/dtype.ts";
import type { FloatCounting } from "../device/dtype.ts";
export {
  parseChunks,
  parseNumber,
  parsePartChunks,
  parsePositiveInt,
} from "../util/flag_values.ts";

/** Flags that take an optional value: `--mst` alone means `--mst auto`. */
const OPTIONAL_VALUE = new Set(["--mst", "--mst-mlp", "--mst-head"]);

/** Inserts "auto" after a bare `--mst`, `--mst-mlp` or `--mst-head`. */
export function normalizeArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    out.push(argv[i]);
    if (OPTIONAL_VALUE.has(argv[i]) && (i + 1 >= argv.length || argv[i + 1].startsWith("--"))) {
      out.push("auto");
    }
  }
  return out;
}

/** Parses a float counting (`--dtype` by default; `what` names the flag or config key). */
export function parseDtype(v: string | undefined, what = "--dtype"): FloatCounting {
  if (v === undefined) return "f32";
  if (v === "f32" || v === "f16" || v === "bf16") return v;
  throw new Error(`${what}: expected f32, f16 or bf16, got "${v}"`);
}

/** Parses `--budget` (e.g. 80GiB; a number without a unit is refused). */
export function parseBudget(v: string | undefined, flag = "--budget"): number {
  if (v === undefined) return Infinity;
  try {
    return parseBytes(v);
  } catch (e) {
    throw new Error(`${flag}: ${(e as Error).message}`);
  }
}

/** What `--budget` was understood as, for the output: "budget: 80 GB = 74.51 GiB (… bytes)". */
export function budgetNote(v: string | undefined, flag = "budget"): string | null {
  return v === undefined ? null : `${flag}: ${describeBytes(v)}`;
}

/**
 * A string option followed by a value starting with "-" (`--seq -4096`): node's parser calls it
 * "ambiguous"; say what it is instead — a negative number where none is accepted.
 */
function checkDashValues(
  argv: readonly string[],
  options: Record<string, { type: "string" | "boolean" }>,
): void {
  for (let i = 0; i + 1 < argv.length; i++) {
    const name = argv[i].startsWith("--") ? argv[i].slice(2) : null;
    const next = argv[i + 1];
    if (name === null || options[name]?.type !== "string" || !/^-[0-9.]/.test(next)) continue;
    throw new Error(
      `--${name} ${next}: a negative value is not accepted here (--${name} takes a positive ` +
        `value, e.g. --${name} ${next.slice(1)})`,
    );
  }
}

/** Options shared by train and plan. */
export const COMMON_OPTIONS = {
  seq: { type: "string" },
  policy: { type: "string" },
  mst: { type: "string" },
  "mst-mlp": { type: "string" },
  "mst-head": { type: "string" },
  checkpoint: { type: "boolean" },
  "optimizer-in-backward": { type: "boolean" },
  framework: { type: "string" },
  "hf-head": { type: "boolean" },
  "offload-checkpoints": { type: "boolean" },
  "keep-attention": { type: "boolean" },
  lora: { type: "string" },
  "base-dtype": { type: "string" },
  device: { type: "string" },
  json: { type: "boolean" },
  config: { type: "string" },
  set: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const;

/** `parseArgs` with the optional-value flags normalized and a clear error for unknown flags. */
export function parseTaskArgs<
  O extends Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>,
>(
  argv: readonly string[],
  options: O,
  usage: string,
) {
  checkDashValues(argv, options);
  try {
    return parseArgs({ args: normalizeArgv(argv), options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n\n${usage}`);
  }
}
