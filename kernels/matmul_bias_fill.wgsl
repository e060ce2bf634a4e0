// Broadcast a bias over rows: out[m, n] = bias[n] (the start of a linear layer's output,
// which the matmul then accumulates into).
//
// Bindings:  @group(0) @binding(0) bias : array<f32>  (N)
//            @group(0) @binding(1) out  : array<f32>  (M, N)  read_write
//            @group(1) @binding(0) p    : Params { total = M·N, N, nx }
// Dispatch:  grid1d(ceil(total / 256)) = (nx, ny, 1); workgroup 64, 4 elements per invocation.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { total: u32, N: u32, nx: u32 }

@group(0) @binding(0) var<storage, read> bias: array<SF>;
@group(0) @binding(1) var<storage, read_write> out: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let base = ((wg.y * p.nx + wg.x) * 64u + li) * 4u;
  for (var j = 0u; j < 4u; j++) {
    let i = base + j;
    if (i < p.total) {
      out[i] = bias[i % p.N];
    }
  }
}
