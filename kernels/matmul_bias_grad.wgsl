// Bias gradient: db[n] += Σ_m dy[m, n] (column sums of a linear layer's output gradient).
//
// Bindings:  @group(0) @binding(0) dy : array<f32>  (M, N)
//            @group(0) @binding(1) db : array<f32>  (N)  read_write
//            @group(1) @binding(0) p  : Params { M, N }
// Dispatch:  (ceil(N / 64), 1, 1); workgroup 64, one column per invocation (race-free).

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { M: u32, N: u32 }

@group(0) @binding(0) var<storage, read> dy: array<SF>;
@group(0) @binding(1) var<storage, read_write> db: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  if (n >= p.N) {
    return;
  }
  // Four partial sums shorten the dependency chain.
  var s = vec4<f32>();
  var m = 0u;
  for (; m + 4u <= p.M; m += 4u) {
    s += vec4<f32>(f32(dy[m * p.N + n]), f32(dy[(m + 1u) * p.N + n]), f32(dy[(m + 2u) * p.N + n]), f32(dy[(m + 3u) * p.N + n]));
  }
  for (; m < p.M; m++) {
    s.x += f32(dy[m * p.N + n]);
  }
  db[n] = SF(f32(db[n]) + (s.x + s.y) + (s.z + s.w));
}
