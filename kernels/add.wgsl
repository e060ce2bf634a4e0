// Elementwise sum: out[i] = a[i] + b[i]  (or a[i] += b[i] with IN_PLACE).
//
// Bindings:  @group(0) @binding(0) a    : array<f32>   (n)   (read, or read_write in place)
//            @group(0) @binding(1) b    : array<f32>   (n)
//            @group(0) @binding(2) out  : array<f32>   (n)
//            @group(1) @binding(0) p    : Params { n }
// Dispatch:  (ceil(n / (64 * 4)), 1, 1) — each invocation handles 4 elements.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> a: array<SF>;
@group(0) @binding(1) var<storage, read> b: array<SF>;
@group(0) @binding(2) var<storage, read_write> out: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let base = gid.x * 4u;
  for (var j = 0u; j < 4u; j++) {
    let i = base + j;
    if (i < p.n) {
      out[i] = SF(f32(a[i]) + f32(b[i]));
    }
  }
}
