/**
 * The one Node global `@pkgjs/parseargs` reads at load (`global`, for its primordials):
 * `globalThis` in a browser. Imported by `node_util.ts` before the polyfill.
 */
const g = globalThis as { global?: unknown };
g.global ??= globalThis;
