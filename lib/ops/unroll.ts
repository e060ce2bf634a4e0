/**
 * WGSL loop unrolling by text rewriting, for kernels whose per-invocation register tiles
 * must stay in registers.
 *
 * lavapipe (and other drivers) only keep a function-scope array in registers when every
 * index is a constant; a loop the driver does not unroll leaves the array in scratch memory,
 * which costs ~2× on the attention kernels. A loop written exactly as
 *
 * ```wgsl
 * for (var r = 0u; r < R; r++) { // @unroll
 *   ...
 * }
 * ```
 *
 * is replaced by `R` copies of its body, each in its own `{ }` block with the loop variable
 * replaced by the literal `0u`, `1u`, …. The bound is a decimal literal or a name given in
 * `bounds`. Without the rewrite the source is still valid WGSL (the marker is a comment).
 */

const LOOP = /for \(var (\w+) = 0u; \1 < (\w+); \1\+\+\) \{ \/\/ @unroll[^\n]*\n/;

/** Unrolls every `// @unroll` loop of `source` (nested loops included). */
export function unrollLoops(source: string, bounds: Record<string, number>): string {
  let out = source;
  for (;;) {
    const m = LOOP.exec(out);
    if (!m) return out;
    const [header, name, boundText] = m;
    const n = /^\d+u?$/.test(boundText) ? parseInt(boundText) : bounds[boundText];
    if (n === undefined || !Number.isInteger(n) || n < 0) {
      throw new Error(
        `unrollLoops: bound "${boundText}" of the @unroll loop over "${name}" is not a literal ` +
          `or one of: ${Object.keys(bounds).join(", ") || "(none given)"}`,
      );
    }
    const bodyStart = m.index + header.length;
    let depth = 1;
    let i = bodyStart;
    for (; i < out.length && depth > 0; i++) {
      if (out[i] === "{") depth++;
      else if (out[i] === "}") depth--;
    }
    if (depth !== 0) throw new Error(`unrollLoops: unbalanced braces in the loop over "${name}"`);
    const body = out.slice(bodyStart, i - 1);
    const ident = new RegExp(`\\b${name}\\b`, "g");
    const copies = Array.from({ length: n }, (_, k) => `{\n${body.replace(ident, `${k}u`)}}\n`);
    out = out.slice(0, m.index) + copies.join("") + out.slice(i);
  }
}
