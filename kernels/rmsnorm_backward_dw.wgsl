// RMSNorm backward, weight gradient (race-free column reduction, fixed order over s):
//   dw[c] += Σ_s dy[s,c] · x[s,c] · rstd[s]      (the same with unit offset: d(1+w)/dw = 1)
//
// Bindings:  @group(0) @binding(0) dy   : array<f32>  (S, d)
//            @group(0) @binding(1) x    : array<f32>  (S, d)
//            @group(0) @binding(2) rstd : array<f32>  (S)
//            @group(0) @binding(3) dw   : array<f32>  (d)      read_write (accumulated)
//            @group(1) @binding(0) p    : Params { S, d }
// Dispatch:  (ceil(d / 64), 1, 1) — one invocation per column.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { S: u32, d: u32 }

@group(0) @binding(0) var<storage, read> dy: array<SF>;
@group(0) @binding(1) var<storage, read> x: array<SF>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.d) {
    return;
  }
  var acc = 0.0;
  for (var s = 0u; s < p.S; s++) {
    let i = s * p.d + c;
    acc += f32(dy[i]) * f32(x[i]) * rstd[s];
  }
  dw[c] = SF(f32(dw[c]) + acc);
}
