// RMSNorm forward: rstd[s] = 1 / sqrt(mean_c x[s,c]² + eps);  y[s,c] = x[s,c] · rstd[s] · w'[c]
// with w' = w, or 1 + w when unit_offset = 1 (Gemma).
//
// Bindings:  @group(0) @binding(0) x    : array<f32>  (S, d)
//            @group(0) @binding(1) w    : array<f32>  (d)
//            @group(0) @binding(2) y    : array<f32>  (S, d)   written
//            @group(0) @binding(3) rstd : array<f32>  (S)      written
//            @group(1) @binding(0) p    : Params { S, d, eps, unit_offset, nx }
// Dispatch:  grid1d(S) — one workgroup of 64 per row; row = wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { S: u32, d: u32, eps: f32, unit_offset: u32, nx: u32 }

@group(0) @binding(0) var<storage, read> x: array<SF>;
@group(0) @binding(1) var<storage, read> w: array<SF>;
@group(0) @binding(2) var<storage, read_write> y: array<SF>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG = 64u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * p.nx + wg.x;
  if (row >= p.S) {
    return;
  }
  let base = row * p.d;
  var acc = 0.0;
  for (var c = li; c < p.d; c += WG) {
    let v = f32(x[base + c]);
    acc += v * v;
  }
  red[li] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      red[li] += red[li + s];
    }
    workgroupBarrier();
  }
  let r = 1.0 / sqrt(red[0] / f32(p.d) + p.eps);
  let off = select(0.0, 1.0, p.unit_offset != 0u);
  for (var c = li; c < p.d; c += WG) {
    y[base + c] = SF(f32(x[base + c]) * r * (f32(w[c]) + off));
  }
  if (li == 0u) {
    rstd[row] = r;
  }
}
