/** Writing files so that a reader never sees half a file: a temporary name, then a rename. */

/** Writes `text` to `path` through `path.tmp-<pid>` and a rename (atomic on one filesystem). */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
