// In-place scale: a[i] *= alpha.
//
// Bindings:  @group(0) @binding(0) a : array<f32> (n)  read_write
//            @group(1) @binding(0) p : Params { n, alpha, nx }
// Dispatch:  grid1d(ceil(n / 256)) = (nx, ny, 1); workgroup 64, 4 elements per invocation.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { n: u32, alpha: f32, nx: u32 }

@group(0) @binding(0) var<storage, read_write> a: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let base = ((wg.y * p.nx + wg.x) * 64u + li) * 4u;
  for (var j = 0u; j < 4u; j++) {
    let i = base + j;
    if (i < p.n) {
      a[i] = SF(p.alpha * f32(a[i]));
    }
  }
}
