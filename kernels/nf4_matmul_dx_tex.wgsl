// NF4 linear, input gradient, dY staged as a texture: dX (S, K) = dY (S, N) · dequant(W)
// (dX += … when accumulate), for K % 4 = 0 and N % 4 = 0. The same product as
// kernels/nf4_matmul_dx.wgsl (layout and formula in kernels/nf4_matmul.wgsl and
// lib/reference/nf4.ts), but each invocation computes 4 columns k..k+3 of dX for 8 rows: the 4
// weight elements W[n, k..k+3] lie in one packed word and one block (k and K are multiples of
// 4), so each is decoded with one word load and one block scale instead of four; dY is read as
// vec4 texels (4 values of n) through `textureLoad` (Device.texture, lib/device/texture.ts).
// Rows past S are clamped on load and skipped on store; invocations past K return.
//
// Bindings:  @group(0) @binding(0) Wq : array<u32>  (⌈N·K/8⌉ words)
//            @group(0) @binding(1) Aq : array<u32>  (⌈⌈N·K/64⌉/4⌉ words)
//            @group(0) @binding(2) Q  : array<f32>  (273 + ⌈⌈N·K/64⌉/256⌉, as nf4_matmul)
//            @group(0) @binding(3) out: array<SF>   (S·K)  read_write: dX
//            @group(1) @binding(0) p  : Params { S, N, K, accumulate }
//            @group(2) @binding(0) D_tex : texture_2d<f32>  (S·N / 4 texels of dY)
// Dispatch:  (⌈K / 256⌉, ⌈S / 8⌉, 1), workgroup size 64.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params {
  S: u32, N: u32, K: u32, accumulate: u32,
}

@group(0) @binding(0) var<storage, read> Wq: array<u32>;
@group(0) @binding(1) var<storage, read> Aq: array<u32>;
@group(0) @binding(2) var<storage, read> Q: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;
@group(2) @binding(0) var D_tex: texture_2d<f32>;

#include "nf4_decode"
#include "nf4_rows"

fn ldD(t: u32) -> vec4<f32> {
  return textureLoad(D_tex, vec2<u32>(t & 1023u, t >> 10u), 0);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let k = 4u * gid.x;
  if (k >= p.K) {
    return;
  }
  let s0 = wg.y * 8u;
  let N4 = p.N / 4u;
  var r = rowOffsets(s0, N4);
  var acc: array<vec4<f32>, 8>;
  for (var n4 = 0u; n4 < N4; n4++) {
    var g: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) {
      g[j] = ldD(r[j] + n4);
    }
    for (var c = 0u; c < 4u; c++) {
      let i = (4u * n4 + c) * p.K + k; // a multiple of 4: one word, one block
      let word = Wq[i >> 3u];
      let w = vec4<f32>(value(word, i), value(word, i + 1u), value(word, i + 2u), value(word, i + 3u)) * scale(i / 64u);
      for (var j = 0u; j < 8u; j++) {
        acc[j] = fma(vec4<f32>(g[j][c]), w, acc[j]);
      }
    }
  }
  for (var j = 0u; j < 8u; j++) {
    let s = s0 + j;
    if (s < p.S) {
      let o = s * p.K + k;
      for (var c = 0u; c < 4u; c++) {
        put(o + c, acc[j][c]);
      }
    }
  }
}
