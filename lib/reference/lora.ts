/**
 * f64 reference of a LoRA linear layer (PEFT semantics, dropout 0), written with the autograd
 * primitives so its gradients come from another method than `lib/nn/lora.ts`'s backward:
 * y = x·Wᵀ (+ bias) + s·(x·Aᵀ)·Bᵀ.
 */

import { add, leaf, matmul, rowBroadcast, scale, transpose, type Var } from "./autograd.ts";

/** The f64 inputs of one LoRA layer: x (S, K), W (N, K), A (r, K), B (N, r), bias (N). */
export interface LoraRefInputs {
  S: number;
  N: number;
  K: number;
  r: number;
  x: ArrayLike<number>;
  w: ArrayLike<number>;
  a: ArrayLike<number>;
  b: ArrayLike<number>;
  bias?: ArrayLike<number>;
  scaling: number;
}

/** The leaves and output of the reference layer (call `backward` on a scalar of `y`). */
export function loraRef(
  p: LoraRefInputs,
): { x: Var; w: Var; a: Var; b: Var; bias?: Var; y: Var } {
  const x = leaf(p.S, p.K, p.x);
  const w = leaf(p.N, p.K, p.w);
  const a = leaf(p.r, p.K, p.a);
  const b = leaf(p.N, p.r, p.b);
  let y = matmul(x, transpose(w));
  let bias: Var | undefined;
  if (p.bias) {
    bias = leaf(1, p.N, p.bias);
    y = rowBroadcast(y, bias, "add");
  }
  // PEFT: result + lora_B(lora_A(x)) * scaling
  const lora = scale(matmul(matmul(x, transpose(a)), transpose(b)), p.scaling);
  return { x, w, a, b, bias, y: add(y, lora) };
}

/** The reference output alone, in f64 (for finite differences). */
export function loraRefForward(p: LoraRefInputs): Float64Array {
  return loraRef(p).y.data;
}
