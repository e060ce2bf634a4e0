// RMSNorm backward in one dispatch: the input gradient (plus an optional residual gradient)
// and the weight gradient, d a multiple of 4. The first `row_groups` workgroups compute dx,
// one row per invocation (vec4 loads, no barriers):
//   dx[s,c] = rstd[s] · w'[c] · dy[s,c] − x[s,c] · rstd[s]³ / d · Σ_j dy[s,j] · w'[j] · x[s,j]
//             (+ res[s,c] with RESIDUAL: the residual branch's gradient, added in place of a
//             separate `add_inplace`)
// with w' = w, or 1 + w when unit_offset = 1; the remaining workgroups reduce columns of the
// weight gradient (race-free, fixed order over s, one column per invocation):
//   dw[c] += Σ_s dy[s,c] · x[s,c] · rstd[s]
// The two roles read the same inputs and write disjoint outputs, so they run side by side
// (replaces rmsnorm_backward_dx_rows + rmsnorm_backward_dw [+ add_inplace]).
//
// Bindings:  @group(0) @binding(0) dy   : array<vec4<f32>>  (S, d/4)
//            @group(0) @binding(1) x    : array<vec4<f32>>  (S, d/4)
//            @group(0) @binding(2) w    : array<vec4<f32>>  (d/4)
//            @group(0) @binding(3) rstd : array<f32>        (S)
//            @group(0) @binding(4) dx   : array<vec4<f32>>  (S, d/4)   written
//            @group(0) @binding(5) dw   : array<f32>        (d)        read_write (accumulated)
//            @group(0) @binding(6) res  : array<vec4<f32>>  (S, d/4)   (RESIDUAL only)
//            @group(1) @binding(0) p    : Params { S, d4 (= d/4), unit_offset, row_groups }
// Template:  RESIDUAL (the res binding and its load, or nothing).
// Dispatch:  (ceil(S / 64) + ceil(d / 64), 1, 1), workgroup size 64.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { S: u32, d4: u32, unit_offset: u32, row_groups: u32 }

@group(0) @binding(0) var<storage, read> dy: array<vec4<SF>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<SF>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<SF>>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<vec4<SF>>;
@group(0) @binding(5) var<storage, read_write> dw: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;
{{RESIDUAL}}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  if (wg.x >= p.row_groups) {
    // Weight gradient: column c of dw, as scalars of the vec4 rows.
    let c = (wg.x - p.row_groups) * 64u + li;
    if (c >= 4u * p.d4) {
      return;
    }
    let q = c / 4u;
    let e = c % 4u;
    var acc = 0.0;
    for (var s = 0u; s < p.S; s++) {
      let i = s * p.d4 + q;
      acc += f32(dy[i][e]) * f32(x[i][e]) * rstd[s];
    }
    dw[c] = SF(f32(dw[c]) + acc);
    return;
  }
  let row = wg.x * 64u + li;
  if (row >= p.S) {
    return;
  }
  let base = row * p.d4;
  let off = vec4<f32>(select(0.0, 1.0, p.unit_offset != 0u));
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < p.d4; c++) {
    acc += vec4<f32>(dy[base + c]) * (vec4<f32>(w[c]) + off) * vec4<f32>(x[base + c]);
  }
  let r = rstd[row];
  let k = r * r * r * (acc.x + acc.y + acc.z + acc.w) / f32(4u * p.d4);
  for (var c = 0u; c < p.d4; c++) {
    dx[base + c] = vec4<SF>(r * (vec4<f32>(w[c]) + off) * vec4<f32>(dy[base + c]) - vec4<f32>(x[base + c]) * k + residual(base + c));
  }
}
