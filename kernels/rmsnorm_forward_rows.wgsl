// RMSNorm forward, one row per invocation, vec4 loads (d a multiple of 4):
//   rstd[s] = 1 / sqrt(mean_c x[s,c]² + eps);  y[s,c] = x[s,c] · rstd[s] · w'[c]
// with w' = w, or 1 + w when unit_offset = 1 (Gemma). No barriers: on lavapipe a workgroup
// barrier per row costs more than the row's arithmetic.
//
// Bindings:  @group(0) @binding(0) x    : array<vec4<f32>>  (S, d/4)
//            @group(0) @binding(1) w    : array<vec4<f32>>  (d/4)
//            @group(0) @binding(2) y    : array<vec4<f32>>  (S, d/4)   written
//            @group(0) @binding(3) rstd : array<f32>        (S)        written
//            @group(1) @binding(0) p    : Params { S, d4 (= d/4), eps, unit_offset, nx }
// Dispatch:  grid1d(ceil(S / 64)) — 64 rows per workgroup; row = (wg.y * nx + wg.x) * 64 + li.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { S: u32, d4: u32, eps: f32, unit_offset: u32, nx: u32 }

@group(0) @binding(0) var<storage, read> x: array<vec4<SF>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<SF>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<SF>>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = (wg.y * p.nx + wg.x) * 64u + li;
  if (row >= p.S) {
    return;
  }
  let base = row * p.d4;
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < p.d4; c++) {
    let v = vec4<f32>(x[base + c]);
    acc += v * v;
  }
  let r = 1.0 / sqrt((acc.x + acc.y + acc.z + acc.w) / f32(4u * p.d4) + p.eps);
  let off = select(0.0, 1.0, p.unit_offset != 0u);
  for (var c = 0u; c < p.d4; c++) {
    y[base + c] = vec4<SF>(vec4<f32>(x[base + c]) * r * (vec4<f32>(w[c]) + vec4<f32>(off)));
  }
  rstd[row] = r;
}
