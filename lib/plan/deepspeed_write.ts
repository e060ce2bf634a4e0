/**
 * `plan … --export deepspeed --out ds.json`: writes the DeepSpeed export's files (kept apart
 * from `deepspeed_export.ts` so the web page can bundle the export without a file system).
 */

import { writeTextAtomic } from "../util/atomic_write.ts";
import { type DeepSpeedExportInput, deepspeedExportTexts } from "./deepspeed_export.ts";

/**
 * Writes the config (atomically, after validating it) to `path` and the launch note beside it
 * (`<name>.launch.md`). Returns both paths.
 */
export async function writeDeepSpeedExport(
  path: string,
  input: DeepSpeedExportInput,
): Promise<{ config: string; note: string }> {
  const note = path.replace(/\.json$/i, "") + ".launch.md";
  const texts = deepspeedExportTexts(input, path.split("/").pop()!);
  await writeTextAtomic(path, texts.config);
  await writeTextAtomic(note, texts.note);
  return { config: path, note };
}
