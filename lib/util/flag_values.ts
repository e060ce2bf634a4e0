/**
 * Parsing flag values (numbers, mini-sequence counts), with errors that name the flag and say
 * what it accepts. Shared by the tasks' argument parsing and the techniques' flags.
 */

/** Parses "auto" or a positive integer M. */
export function parseChunks(flag: string, v: string): number | "auto" {
  if (v === "auto") return "auto";
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(
      `${flag}: expected "auto" or a positive integer number of mini-sequences, got "${v}"`,
    );
  }
  return n;
}

/** Parses one part's M: "auto", "off" or a positive integer. */
export function parsePartChunks(flag: string, v: string): number | "auto" | "off" {
  if (v === "off") return "off";
  try {
    return parseChunks(flag, v);
  } catch {
    throw new Error(
      `${flag}: expected "auto", "off" or a positive integer number of mini-sequences, got "${v}"`,
    );
  }
}

/** Parses a positive integer flag. */
export function parsePositiveInt(flag: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`${flag}: expected a positive integer, got "${v}"`);
  }
  return n;
}

/** Parses a finite number flag. */
export function parseNumber(flag: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) {
    throw new Error(`${flag}: expected a number, got "${v}"`);
  }
  return n;
}
