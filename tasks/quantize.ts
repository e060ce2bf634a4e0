/**
 * `deno task quantize <in.safetensors> --out <out.safetensors> [--targets all|q,k,v,o,gate,up,down]
 *   [--force]`
 *
 * Quantises the linear weights of a checkpoint (e.g. the `model.safetensors` of a run saved by
 * `train --save`, or any safetensors file with Hugging Face decoder names) to NF4 with
 * double-quantised absmax, bitsandbytes' QLoRA storage, in the layout transformers writes for
 * a 4-bit model (lib/checkpoint/nf4_checkpoint.ts). Embeddings, norms and the LM head are kept.
 * The output is written atomically (temporary name, then rename).
 */

import { parseTaskArgs } from "../lib/cli/args.ts";
import { parseNf4Targets, quantizeCheckpoint } from "../lib/checkpoint/nf4_checkpoint.ts";
import { readSafetensors, writeSafetensors } from "../lib/checkpoint/safetensors.ts";
import { formatBytes } from "../lib/device/dtype.ts";
import { resolve } from "node:path";
import { runTask } from "../lib/cli/task_main.ts";

const USAGE =
  `usage: deno task quantize <in.safetensors> --out <out.safetensors> [--targets all|q,k,v,o,gate,up,down] [--force]

  Quantises the linear weights (self_attn q/k/v/o_proj, mlp gate/up/down_proj) to NF4 with
  double-quantised absmax (bitsandbytes' QLoRA storage: block size 64, 8-bit absmax, one f32
  constant per 256 blocks; ≈4.127 bits per parameter). Other tensors are kept.
  --targets  which linear layers (default all)
  --force    overwrite --out if it exists`;

/** Runs the command; returns the lines it prints. */
export async function main(argv: readonly string[]): Promise<string[]> {
  const { values, positionals } = parseTaskArgs(argv, {
    out: { type: "string" },
    targets: { type: "string" },
    force: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, USAGE);
  if (values.help) return [USAGE];
  if (positionals.length !== 1 || !values.out) {
    throw new Error(`give one input file and --out\n\n${USAGE}`);
  }
  const input = positionals[0];
  const out = values.out;
  if (resolve(input) === resolve(out)) {
    throw new Error(`--out ${out} is the input file; write the quantised copy elsewhere`);
  }
  if (!values.force) {
    try {
      await Deno.stat(out);
      throw new Error(`${out} exists; pass --force to overwrite it`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const targets = parseNf4Targets(values.targets ?? "all");
  let file;
  try {
    file = await readSafetensors(input);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (e instanceof Deno.errors.NotFound || code === "ENOENT") {
      throw new Error(`cannot read ${input}: no such file`);
    }
    if (code === "EISDIR") {
      throw new Error(
        `${input} is a directory; give a safetensors file (e.g. its model.safetensors)`,
      );
    }
    throw e;
  }
  const { tensors, metadata, report } = quantizeCheckpoint(file, targets, input);
  await writeSafetensors(out, tensors, metadata);
  const bits = (bytes: number) => ((8 * bytes) / report.quantizedParameters).toFixed(3);
  return [
    `quantised ${report.quantized.length} linear weights (${report.quantizedParameters} ` +
    `parameters) to NF4: ${formatBytes(report.bytesBefore)} → ${formatBytes(report.bytesAfter)}; ${
      bits(report.dataBytes)
    } bits/parameter of data (codes, absmax codes, per-256 ` +
    `constants, offsets), ${bits(report.bytesAfter)} with each weight's maps and quant state`,
    `kept ${report.kept.length} tensors as they were; wrote ${out}`,
  ];
}

if (import.meta.main) {
  await runTask("quantize", async () => {
    for (const line of await main(Deno.args)) console.log(line);
  });
}
