// NF4 linear, input gradient: dX (S, K) = dY (S, N) · dequant(W)  (dX += … when accumulate),
// W (N, K) stored in NF4 with double-quantised absmax as bitsandbytes does (layout and formula in
// kernels/nf4_matmul.wgsl and lib/reference/nf4.ts). Dequantised on the fly; f32 accumulation.
// The frozen base gets no weight gradient, so this is the only backward product it takes part in.
//
// Each invocation computes one column k of dX for 8 rows s0..s0+7, walking n: element
// i = n·K + k is decoded (code and block absmax) once per 8 rows. Rows past S are clamped on
// load and skipped on store; invocations past K return.
//
// Bindings:  @group(0) @binding(0) dY : array<SF>   (S·N)
//            @group(0) @binding(1) Wq : array<u32>  (⌈N·K/8⌉ words)
//            @group(0) @binding(2) Aq : array<u32>  (⌈⌈N·K/64⌉/4⌉ words)
//            @group(0) @binding(3) Q  : array<f32>  (273 + ⌈⌈N·K/64⌉/256⌉, as nf4_matmul)
//            @group(0) @binding(4) out: array<SF>   (S·K)  read_write: dX
//            @group(1) @binding(0) p  : Params { S, N, K, accumulate }
// Dispatch:  (⌈K / 64⌉, ⌈S / 8⌉, 1), workgroup size 64.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params {
  S: u32, N: u32, K: u32, accumulate: u32,
}

@group(0) @binding(0) var<storage, read> dY: array<SF>;
@group(0) @binding(1) var<storage, read> Wq: array<u32>;
@group(0) @binding(2) var<storage, read> Aq: array<u32>;
@group(0) @binding(3) var<storage, read> Q: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

#include "nf4_decode"
#include "nf4_rows"

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let k = gid.x;
  if (k >= p.K) {
    return;
  }
  let s0 = wg.y * 8u;
  var r = rowOffsets(s0, p.N);
  var acc0 = vec4<f32>();
  var acc1 = vec4<f32>();
  for (var n = 0u; n < p.N; n++) {
    let i = n * p.K + k;
    let w = Q[code(i)] * scale(i / 64u);
    let g0 = vec4<f32>(f32(dY[r[0] + n]), f32(dY[r[1] + n]), f32(dY[r[2] + n]), f32(dY[r[3] + n]));
    let g1 = vec4<f32>(f32(dY[r[4] + n]), f32(dY[r[5] + n]), f32(dY[r[6] + n]), f32(dY[r[7] + n]));
    acc0 = fma(g0, vec4<f32>(w), acc0);
    acc1 = fma(g1, vec4<f32>(w), acc1);
  }
  putColumn(s0, k, p.K, acc0, acc1);
}
