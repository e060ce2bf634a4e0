// NF4 linear, forward: Y (S, N) = X (S, K) · dequant(W)ᵀ  (Y += … when accumulate),
// W (N, K) stored in NF4 with double-quantised absmax exactly as bitsandbytes does
// (lib/reference/nf4.ts): element i = n·K + k of the flattened weight has the 4-bit code in
// byte i / 2 (high nibble for even i), its block b = i / 64 (blocks run over the flattened
// weight, so one may straddle rows) has an 8-bit absmax code q_b, and
//   W[n, k] = NF4[code_i] · (DYN[q_b] · NESTED[b / 256] + OFFSET).
// Dequantised on the fly in registers (kernels/include/nf4_decode.wgsl); the weight is never
// expanded in memory. f32 accumulation.
//
// Each invocation computes one column n for 8 rows s0..s0+7 (8 f32 accumulators), walking k
// once: every weight element is decoded once per 8 rows. Rows past S are clamped on load and
// skipped on store; invocations past N return.
//
// Bindings:  @group(0) @binding(0) X  : array<SF>   (S·K)
//            @group(0) @binding(1) Wq : array<u32>  (⌈N·K/8⌉ words: the bitsandbytes bytes, LE)
//            @group(0) @binding(2) Aq : array<u32>  (⌈⌈N·K/64⌉/4⌉ words: absmax codes, LE)
//            @group(0) @binding(3) Q  : array<f32>  (273 + ⌈⌈N·K/64⌉/256⌉: NF4 table [0, 16),
//                                                    dynamic map [16, 272), offset [272],
//                                                    per-256-block constants [273, …))
//            @group(0) @binding(4) out: array<SF>   (S·N)  read_write: Y
//            @group(1) @binding(0) p  : Params { S, N, K, accumulate }
// Dispatch:  (⌈N / 64⌉, ⌈S / 8⌉, 1), workgroup size 64.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params {
  S: u32, N: u32, K: u32, accumulate: u32,
}

@group(0) @binding(0) var<storage, read> X: array<SF>;
@group(0) @binding(1) var<storage, read> Wq: array<u32>;
@group(0) @binding(2) var<storage, read> Aq: array<u32>;
@group(0) @binding(3) var<storage, read> Q: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

#include "nf4_decode"
#include "nf4_rows"

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let n = gid.x;
  if (n >= p.N) {
    return;
  }
  let s0 = wg.y * 8u;
  var r = rowOffsets(s0, p.K);
  var acc0 = vec4<f32>();
  var acc1 = vec4<f32>();
  let base = n * p.K;
  var sc = scale(base / 64u);
  for (var k = 0u; k < p.K; k++) {
    let i = base + k;
    if ((i & 63u) == 0u) {
      sc = scale(i / 64u);
    }
    let w = Q[code(i)] * sc;
    let x0 = vec4<f32>(f32(X[r[0] + k]), f32(X[r[1] + k]), f32(X[r[2] + k]), f32(X[r[3] + k]));
    let x1 = vec4<f32>(f32(X[r[4] + k]), f32(X[r[5] + k]), f32(X[r[6] + k]), f32(X[r[7] + k]));
    acc0 = fma(x0, vec4<f32>(w), acc0);
    acc1 = fma(x1, vec4<f32>(w), acc1);
  }
  putColumn(s0, n, p.N, acc0, acc1);
}
