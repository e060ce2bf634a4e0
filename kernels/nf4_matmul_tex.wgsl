// NF4 linear, forward, X staged as a texture: Y (S, N) = X (S, K) · dequant(W)ᵀ (Y += … when
// accumulate), for K % 4 = 0. The same product as kernels/nf4_matmul.wgsl (layout and formula
// there and in lib/reference/nf4.ts), but X is read as vec4 texels through `textureLoad` (staged by
// Device.texture, lib/device/texture.ts: texel t at (t & 1023, t >> 10)): on lavapipe a storage
// load is a per-lane loop with a bounds check, and X is what this kernel reads most.
//
// Each invocation computes one column n for 8 rows s0..s0+7, walking k by 4: 8 texels of X, 4
// weight elements decoded (the packed word loaded once per 8 elements, the block scale once per
// 64). Rows past S are clamped on load and skipped on store; invocations past N return.
//
// Bindings:  @group(0) @binding(0) Wq : array<u32>  (⌈N·K/8⌉ words)
//            @group(0) @binding(1) Aq : array<u32>  (⌈⌈N·K/64⌉/4⌉ words)
//            @group(0) @binding(2) Q  : array<f32>  (273 + ⌈⌈N·K/64⌉/256⌉, as nf4_matmul)
//            @group(0) @binding(3) out: array<SF>   (S·N)  read_write: Y
//            @group(1) @binding(0) p  : Params { S, N, K, accumulate }
//            @group(2) @binding(0) X_tex : texture_2d<f32>  (S·K / 4 texels)
// Dispatch:  (⌈N / 64⌉, ⌈S / 8⌉, 1), workgroup size 64.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params {
  S: u32, N: u32, K: u32, accumulate: u32,
}

@group(0) @binding(0) var<storage, read> Wq: array<u32>;
@group(0) @binding(1) var<storage, read> Aq: array<u32>;
@group(0) @binding(2) var<storage, read> Q: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;
@group(2) @binding(0) var X_tex: texture_2d<f32>;

#include "nf4_decode"
#include "nf4_rows"

fn ldX(t: u32) -> vec4<f32> {
  return textureLoad(X_tex, vec2<u32>(t & 1023u, t >> 10u), 0);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let n = gid.x;
  if (n >= p.N) {
    return;
  }
  let s0 = wg.y * 8u;
  let K4 = p.K / 4u;
  var r = rowOffsets(s0, K4);
  var acc0 = vec4<f32>();
  var acc1 = vec4<f32>();
  let base = n * p.K;
  var sc = scale(base / 64u);
  var word = Wq[base >> 3u];
  for (var k4 = 0u; k4 < K4; k4++) {
    let i = base + 4u * k4; // a multiple of 4: the 4 elements share one word and one block
    if ((i & 63u) == 0u) {
      sc = scale(i / 64u);
    }
    if ((i & 7u) == 0u) {
      word = Wq[i >> 3u];
    }
    let w = vec4<f32>(value(word, i), value(word, i + 1u), value(word, i + 2u), value(word, i + 3u)) * sc;
    acc0 = acc0 + vec4<f32>(dot(ldX(r[0] + k4), w), dot(ldX(r[1] + k4), w), dot(ldX(r[2] + k4), w), dot(ldX(r[3] + k4), w));
    acc1 = acc1 + vec4<f32>(dot(ldX(r[4] + k4), w), dot(ldX(r[5] + k4), w), dot(ldX(r[6] + k4), w), dot(ldX(r[7] + k4), w));
  }
  putColumn(s0, n, p.N, acc0, acc1);
}
