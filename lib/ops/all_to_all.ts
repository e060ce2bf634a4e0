/**
 * Ulysses sequence parallelism on a planned rank (meta device only): the all-to-all that turns
 * a rank's S/K rows of all heads into all S rows of H/K heads, and back.
 *
 * DeepSpeed's `UlyssesSPAttentionHF` (`deepspeed/runtime/sequence_parallel/ulysses_sp.py`)
 * rearranges the local tensor into a contiguous send buffer (`rearrange(...).contiguous()`),
 * exchanges it with `_DimZeroAllToAll` into a new output of the same size and reshapes that.
 * So each exchange holds a send copy (tag `comm`, freed after the collective) beside its input
 * and output. When K exceeds the KV heads, each KV head is first replicated K/KV times
 * (`repeat_interleave`), and in backward the replicas' gradients are summed back.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";

function metaOnly(dev: Device, what: string): void {
  if (dev.kind !== "meta") {
    throw new Error(
      `${what}: a rank's share of a multi-GPU step runs on the meta device only ` +
        `(plan it with \`deno task plan … --gpus N --sp K\`)`,
    );
  }
}

/**
 * The all-to-all of one tensor: `x` (rows, cols) becomes a new tensor `shape` of the same
 * size (the caller frees `x`). The send copy is allocated and freed around the exchange.
 */
export function allToAll(dev: Device, x: Tensor, shape: readonly number[], name: string): Tensor {
  metaOnly(dev, "allToAll");
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== x.size) {
    throw new Error(`allToAll ${name}: [${x.shape}] has ${x.size} elements, [${shape}] has ${n}`);
  }
  const send = dev.tensor([x.size], { tag: "comm", name: `${name}.send` });
  const out = dev.tensor(shape, { tag: x.tag, name });
  send.dispose();
  return out;
}

/**
 * Sequence-sharded → head-sharded: (S/K, heads·hd) → (S, heads/K·hd). With `replicate` > 1
 * (K > KV heads), the heads are first repeated `replicate` times (a new tensor).
 */
export function seqToHeads(
  dev: Device,
  x: Tensor,
  sp: number,
  headDim: number,
  name: string,
  replicate = 1,
): Tensor {
  const [rows, cols] = x.shape;
  let src = x;
  if (replicate > 1) {
    src = dev.tensor([rows, cols * replicate], { tag: x.tag, name: `${name}.replicated` });
  }
  const out = allToAll(dev, src, [rows * sp, (cols * replicate) / sp], name);
  if (src !== x) src.dispose();
  if (((cols * replicate) / sp) % headDim !== 0) {
    throw new Error(`seqToHeads ${name}: ${cols * replicate / sp} columns are not whole heads`);
  }
  return out;
}

/**
 * Head-sharded → sequence-sharded: (S, heads/K·hd) → (S/K, heads·hd). With `replicate` > 1
 * the replicated heads' gradients are summed back into (S/K, heads·hd / replicate).
 */
export function headsToSeq(
  dev: Device,
  x: Tensor,
  sp: number,
  name: string,
  replicate = 1,
): Tensor {
  const [rows, cols] = x.shape;
  const out = allToAll(dev, x, [rows / sp, cols * sp], name);
  if (replicate === 1) return out;
  const summed = dev.tensor([rows / sp, (cols * sp) / replicate], {
    tag: x.tag,
    name: `${name}.sum`,
  });
  out.dispose();
  return summed;
}
