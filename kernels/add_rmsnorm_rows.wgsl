// Residual add + RMSNorm forward in one pass, one row per invocation, vec4 loads
// (d a multiple of 4):
//   h[s,c] = a[s,c] + b[s,c];  rstd[s] = 1 / sqrt(mean_c h[s,c]² + eps);
//   y[s,c] = h[s,c] · rstd[s] · w'[c]
// with w' = w, or 1 + w when unit_offset = 1 (Gemma). The residual sum h is written too (the
// block keeps it for the next residual and the norm's backward). Replaces `add` followed by
// `rmsnorm_forward_rows`: one dispatch, a and b read once, h not read back.
//
// Bindings:  @group(0) @binding(0) a    : array<vec4<f32>>  (S, d/4)
//            @group(0) @binding(1) b    : array<vec4<f32>>  (S, d/4)
//            @group(0) @binding(2) w    : array<vec4<f32>>  (d/4)
//            @group(0) @binding(3) h    : array<vec4<f32>>  (S, d/4)   written: a + b
//            @group(0) @binding(4) y    : array<vec4<f32>>  (S, d/4)   written
//            @group(0) @binding(5) rstd : array<f32>        (S)        written
//            @group(1) @binding(0) p    : Params { S, d4 (= d/4), eps, unit_offset, nx }
// Dispatch:  grid1d(ceil(S / 64)) — 64 rows per workgroup; row = (wg.y * nx + wg.x) * 64 + li.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { S: u32, d4: u32, eps: f32, unit_offset: u32, nx: u32 }

@group(0) @binding(0) var<storage, read> a: array<vec4<SF>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<SF>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<SF>>;
@group(0) @binding(3) var<storage, read_write> h: array<vec4<SF>>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<SF>>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
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
    // v is rounded to the stored h, so y normalizes exactly the h the residual carries on.
    let v = vec4<f32>(vec4<SF>(vec4<f32>(a[base + c]) + vec4<f32>(b[base + c])));
    h[base + c] = vec4<SF>(v);
    acc += v * v;
  }
  let r = 1.0 / sqrt((acc.x + acc.y + acc.z + acc.w) / f32(4u * p.d4) + p.eps);
  let off = select(0.0, 1.0, p.unit_offset != 0u);
  for (var c = 0u; c < p.d4; c++) {
    y[base + c] = vec4<SF>(vec4<f32>(h[base + c]) * r * (vec4<f32>(w[c]) + vec4<f32>(off)));
  }
  rstd[row] = r;
}
