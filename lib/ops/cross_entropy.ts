/** Cross-entropy over a vocabulary with optional logit soft-capping (Gemma-2) and ignored targets. */

import type { Tag } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import { Params } from "../device/kernel_source.ts";
import type { Tensor } from "../device/tensor.ts";
import { grid1d } from "./util.ts";

/** Options shared by the forward and the backward. */
export interface CrossEntropyOptions {
  /** Soft-cap c: z = c·tanh(x/c) before the log-softmax; off when absent or 0. */
  softcap?: number;
  /** Target value whose rows are ignored (loss 0, gradient 0). Default −100. */
  ignoreIndex?: number;
}

function check(logits: Tensor, targets: Tensor, op: string, softcap: number): [number, number] {
  if (logits.shape.length !== 2 || logits.dtype !== "f32") {
    throw new Error(
      `${op}: logits: expected f32 [N, V], got ${logits.dtype} [${logits.shape.join(", ")}]`,
    );
  }
  const [N, V] = logits.shape;
  if (targets.dtype !== "i32" || targets.shape.length !== 1 || targets.shape[0] !== N) {
    throw new Error(
      `${op}: targets: expected i32 [${N}], got ${targets.dtype} [${targets.shape.join(", ")}]`,
    );
  }
  if (!(softcap >= 0) || !Number.isFinite(softcap)) {
    throw new Error(`${op}: softcap must be a finite number >= 0 (0 = off), got ${softcap}`);
  }
  return [N, V];
}

/**
 * losses (N) = logsumexp(z) − z[target] per row, z = soft-capped logits; 0 on rows whose
 * target is `ignoreIndex`, NaN on rows whose target is outside 0..V-1.
 *
 * @param logits (N, V)
 * @param targets i32 (N)
 */
export function crossEntropyLosses(
  dev: Device,
  logits: Tensor,
  targets: Tensor,
  opts: CrossEntropyOptions & { tag?: Tag; name?: string } = {},
): Tensor {
  const softcap = opts.softcap ?? 0;
  const [N, V] = check(logits, targets, "crossEntropyLosses", softcap);
  const losses = dev.tensor([N], {
    tag: opts.tag ?? "activations",
    name: opts.name ?? "ce.losses",
  }); // (N)
  const [nx, ny] = grid1d(N);
  dev.dispatch({
    kernel: "cross_entropy_losses",
    bindings: [logits, targets, losses],
    params: new Params().u32(N).u32(V).f32(softcap).i32(opts.ignoreIndex ?? -100).u32(nx),
    workgroups: [nx, ny],
  });
  return losses;
}

/**
 * dlogits (N, V) = gradScale · (softmax(z) − onehot(target)) · dz/dx, with dz/dx = 1 − (z/c)²
 * under a soft-cap; zero rows for ignored targets.
 *
 * With `inPlace` the logits are overwritten and returned (the same tensor object; nothing is
 * allocated). Otherwise a new tensor (tag `logits` unless `tag` says otherwise) is returned.
 */
export function crossEntropyBackward(
  dev: Device,
  logits: Tensor,
  targets: Tensor,
  opts: CrossEntropyOptions & { gradScale: number; inPlace?: boolean; tag?: Tag; name?: string },
): Tensor {
  const softcap = opts.softcap ?? 0;
  const [N, V] = check(logits, targets, "crossEntropyBackward", softcap);
  let out = logits; // (N, V)
  if (!opts.inPlace) {
    out = dev.tensor([N, V], { tag: opts.tag ?? "logits", name: opts.name ?? "ce.dlogits" });
    dev.copy(logits, 0, out, 0, N * V);
  }
  const [nx, ny] = grid1d(N);
  dev.dispatch({
    kernel: "cross_entropy_backward",
    bindings: [out, targets],
    params: new Params().u32(N).u32(V).f32(softcap).i32(opts.ignoreIndex ?? -100)
      .f32(opts.gradScale).u32(nx),
    workgroups: [nx, ny],
  });
  return out;
}
