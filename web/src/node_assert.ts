/**
 * `node:assert`'s `AssertionError` for the page: the shared test helpers
 * (`lib/testing/all_close.ts`) throw it when a kernel's output is off its reference. The
 * build (`tasks/web.ts`) points the bundles' `node:assert` imports here.
 */

/** An assertion failed; `message` says which values differed. */
export class AssertionError extends Error {
  /** What the check compared, as Node's AssertionError takes it. */
  constructor(opts: { message?: string } | string = {}) {
    super(typeof opts === "string" ? opts : opts.message ?? "assertion failed");
    this.name = "AssertionError";
  }
}

/** `assert(value, message)`: throws an {@link AssertionError} unless `value` is truthy. */
export default function assert(value: unknown, message?: string): asserts value {
  if (!value) throw new AssertionError({ message: message ?? "assertion failed" });
}
