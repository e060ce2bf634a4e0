/** Writing files so that a reader never sees half a file: a temporary name, then a rename. */

import { rename, rm, writeFile } from "node:fs/promises";

/**
 * Writes `path` atomically: the bytes go to `path.tmp-<pid>-<time>` in the same directory,
 * which is then renamed over `path` (a crash leaves the old file or the new one, never a
 * partial one).
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Text variant of {@link writeFileAtomic}. */
export function writeTextAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, text);
}
