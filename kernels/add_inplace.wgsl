// In-place elementwise accumulate: a[i] += alpha * b[i].
//
// Bindings:  @group(0) @binding(0) a : array<f32> (n)  read_write
//            @group(0) @binding(1) b : array<f32> (n)
//            @group(1) @binding(0) p : Params { n, alpha }
// Dispatch:  (ceil(n / 256), 1, 1) — 64 invocations × 4 elements.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { n: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read_write> a: array<SF>;
@group(0) @binding(1) var<storage, read> b: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let base = gid.x * 4u;
  for (var j = 0u; j < 4u; j++) {
    let i = base + j;
    if (i < p.n) {
      a[i] = SF(f32(a[i]) + p.alpha * f32(b[i]));
    }
  }
}
