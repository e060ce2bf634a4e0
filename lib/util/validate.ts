/**
 * Checks for the inputs of the public plan and train entry points, at the boundary: each error
 * names the field, says what was given and what is accepted, so a bad value never fails deep
 * inside (an attention kernel's shape check, an array allocation) or is used silently (S = 1.5).
 */

/**
 * The largest sequence length the workbench can count: token positions and ids are int32
 * (`Int32Array` batches, WGSL `i32` indices), so S stays below 2^31.
 */
export const MAX_SEQ = 2 ** 31 - 1;

function shown(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/**
 * Checks an integer field: a finite integer in [`min`, `max`]. `where` names the entry point and
 * `field` the input (e.g. `planStep`, `seq`).
 */
export function checkInteger(
  where: string,
  field: string,
  value: unknown,
  { min = 1, max = Number.MAX_SAFE_INTEGER, why = "" }: {
    min?: number;
    max?: number;
    why?: string;
  } = {},
): number {
  const ok = typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;
  if (!ok) {
    const what = typeof value !== "number"
      ? `a ${value === null ? "null" : typeof value}`
      : Number.isNaN(value)
      ? "NaN"
      : !Number.isFinite(value)
      ? "not finite"
      : !Number.isInteger(value)
      ? "not an integer"
      : value < min
      ? `below ${min}`
      : `above ${max}${why ? `: ${why}` : ""}`;
    throw new Error(
      `${where}: ${field} must be an integer from ${min} to ${max}, got ${shown(value)} (${what})`,
    );
  }
  return value as number;
}

/** Checks a sequence length: an integer S with 1 ≤ S ≤ {@link MAX_SEQ}. */
export function checkSeq(where: string, value: unknown, field = "seq"): number {
  return checkInteger(where, field, value, {
    min: 1,
    max: MAX_SEQ,
    why: "token positions are int32",
  });
}

/** Checks a memory budget in bytes: a number ≥ 0, or Infinity for "no limit". */
export function checkBudget(where: string, value: unknown, field = "budget"): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new Error(
      `${where}: ${field} must be a number of bytes ≥ 0 (Infinity: no limit), got ${shown(value)}`,
    );
  }
  return value;
}
