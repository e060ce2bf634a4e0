// Embedding backward, race-free: dTable[v, c] += scale * Σ_{k in offsets[v]..offsets[v+1]} dy[positions[k], c].
// Each invocation owns one (token v, block of 4 columns) of dTable, so no two invocations
// write the same element and no atomics are needed. Tokens with no occurrence return early.
//
// Bindings:  @group(0) @binding(0) offsets   : array<i32>  (V + 1)   CSR row starts
//            @group(0) @binding(1) positions : array<i32>  (S)       sequence positions, grouped by token
//            @group(0) @binding(2) dy        : array<f32>  (S, d)
//            @group(0) @binding(3) dtable    : array<f32>  (V, d)    read_write (accumulated)
//            @group(1) @binding(0) p         : Params { V, d, cb = ceil(d/4), scale, nx }
// Dispatch:  grid1d(ceil(V * cb / 256)) — one invocation per (token, 4-column block);
//            the linear workgroup index is wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { V: u32, d: u32, cb: u32, scale: f32, nx: u32 }

@group(0) @binding(0) var<storage, read> offsets: array<i32>;
@group(0) @binding(1) var<storage, read> positions: array<i32>;
@group(0) @binding(2) var<storage, read> dy: array<SF>;
@group(0) @binding(3) var<storage, read_write> dtable: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * p.nx + wg.x) * 256u + li;
  if (i >= p.V * p.cb) {
    return;
  }
  let v = i / p.cb;
  let c0 = (i - v * p.cb) * 4u;
  let start = offsets[v];
  let end = offsets[v + 1u];
  if (end <= start) {
    return;
  }
  let nc = min(4u, p.d - c0);
  var acc = vec4<f32>(0.0);
  for (var k = start; k < end; k++) {
    let row = u32(positions[k]) * p.d + c0;
    for (var j = 0u; j < nc; j++) {
      acc[j] += f32(dy[row + j]);
    }
  }
  let base = v * p.d + c0;
  for (var j = 0u; j < nc; j++) {
    dtable[base + j] = SF(f32(dtable[base + j]) + p.scale * acc[j]);
  }
}
