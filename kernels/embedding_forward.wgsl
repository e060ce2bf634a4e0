// Embedding lookup: out[s, c] = scale * table[ids[s], c].
// An id outside 0..V-1 yields NaN in its row (the kernel cannot raise an error; the host
// validates ids when it builds the backward index).
//
// Bindings:  @group(0) @binding(0) ids   : array<i32>  (S)
//            @group(0) @binding(1) table : array<f32>  (V, d)
//            @group(0) @binding(2) out   : array<f32>  (S, d)   written
//            @group(1) @binding(0) p     : Params { n = S*d, d, V, scale, nx }
// Dispatch:  grid1d(ceil(S*d / 256)) — one invocation per output element; the linear
//            workgroup index is wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { n: u32, d: u32, V: u32, scale: f32, nx: u32 }

@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> table: array<SF>;
@group(0) @binding(2) var<storage, read_write> out: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

// A quiet NaN, read at run time: WGSL makes a NaN from a constant expression an error
// (Chromium's Tint rejects `bitcast<f32>(0x7fc00000u)`; naga folded it).
var<private> NAN_BITS: u32 = 0x7fc00000u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * p.nx + wg.x) * 256u + li;
  if (i >= p.n) {
    return;
  }
  let s = i / p.d;
  let c = i - s * p.d;
  let id = ids[s];
  if (id < 0 || u32(id) >= p.V) {
    out[i] = SF(bitcast<f32>(NAN_BITS));
    return;
  }
  out[i] = SF(p.scale * f32(table[u32(id) * p.d + c]));
}
