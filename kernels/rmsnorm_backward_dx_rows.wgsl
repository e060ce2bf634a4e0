// RMSNorm backward, input gradient, one row per invocation, vec4 loads (d a multiple of 4):
//   dx[s,c] = rstd[s] · w'[c] · dy[s,c] − x[s,c] · rstd[s]³ / d · Σ_j dy[s,j] · w'[j] · x[s,j]
// with w' = w, or 1 + w when unit_offset = 1. No barriers.
//
// Bindings:  @group(0) @binding(0) dy   : array<vec4<f32>>  (S, d/4)
//            @group(0) @binding(1) x    : array<vec4<f32>>  (S, d/4)
//            @group(0) @binding(2) w    : array<vec4<f32>>  (d/4)
//            @group(0) @binding(3) rstd : array<f32>        (S)
//            @group(0) @binding(4) dx   : array<vec4<f32>>  (S, d/4)   written
//            @group(1) @binding(0) p    : Params { S, d4 (= d/4), unit_offset, nx }
// Dispatch:  grid1d(ceil(S / 64)) — 64 rows per workgroup; row = (wg.y * nx + wg.x) * 64 + li.

struct Params { S: u32, d4: u32, unit_offset: u32, nx: u32 }

@group(0) @binding(0) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<vec4<f32>>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = (wg.y * p.nx + wg.x) * 64u + li;
  if (row >= p.S) {
    return;
  }
  let base = row * p.d4;
  let off = vec4<f32>(select(0.0, 1.0, p.unit_offset != 0u));
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < p.d4; c++) {
    acc += dy[base + c] * (w[c] + off) * x[base + c];
  }
  let r = rstd[row];
  let k = r * r * r * (acc.x + acc.y + acc.z + acc.w) / f32(4u * p.d4);
  for (var c = 0u; c < p.d4; c++) {
    dx[base + c] = r * (w[c] + off) * dy[base + c] - x[base + c] * k;
  }
}
