// Causal grouped-query attention, backward part 2: dk and dv.
//
// Each invocation owns R consecutive keys of one kv head g and keeps k (pre-scaled), v and
// the dk / dv accumulators in registers. It loops over the query heads of its group
// (h with floor(h·KV / H) = g) and over the query rows that can see its keys, recomputing
// P_ij = exp(z_ij − lse_i) (z = softcap(scale·q_i·k_j)) and
// dS_ij = P_ij (dO_i·v_j − D_i) · dz/ds:
//   dv_j = Σ_{h,i} P_ij dO_i,   dk_j = scale · Σ_{h,i} dS_ij q_i.
// Each key row is written by exactly one invocation (race-free, no atomics). Query loop
// bounds are uniform over the workgroup; causal / window masks are element-wise.
//
// Bindings:  @group(0) @binding(0) k      : array<vec4<f32>>  (S, KV·hd)
//            @group(0) @binding(1) v      : array<vec4<f32>>  (S, KV·hd)
//            @group(0) @binding(2) lse    : array<f32>        (H, S)
//            @group(0) @binding(3) dsum   : array<f32>        (H, S)      D = rowsum(dO ∘ O)
//            @group(0) @binding(4) dk     : array<vec4<f32>>  (S, KV·hd)  written
//            @group(0) @binding(5) dv     : array<vec4<f32>>  (S, KV·hd)  written
//            @group(1) @binding(0) p      : Params { S, H, KV, window (0 = none),
//                                                    scale, softcap (0 = none) }
//            @group(2) @binding(0) q_tex  : texture_2d<f32>   q (S, H·hd) staged (texture.ts)
//            @group(2) @binding(1) b_tex : texture_2d<f32>   dO (S, H·hd) staged
//            (A tensor too large to stage is bound as storage instead, at @group(0)
//            @binding(6) and (7).)
// Template:  HD4 = hd / 4, R = keys per invocation, WG = workgroup size.
//            Loops marked `// @unroll` are unrolled by lib/ops/unroll.ts (constant indices
//            keep the register tiles in registers).
// Dispatch:  (ceil(S / (R·WG)), KV, 1).

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { S: u32, H: u32, KV: u32, window: u32, scale: f32, softcap: f32 }

@group(0) @binding(0) var<storage, read> k: array<vec4<SF>>;
@group(0) @binding(1) var<storage, read> v: array<vec4<SF>>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> dsum: array<f32>;
@group(0) @binding(4) var<storage, read_write> dk: array<vec4<SF>>;
@group(0) @binding(5) var<storage, read_write> dv: array<vec4<SF>>;
@group(1) @binding(0) var<uniform> p: Params;
// The template value OPERANDS (lib/ops/attention.ts) declares the two streamed operands here, as textures
// (@group(2)) or, when too large to stage (or `stage: false`), as storage buffers after the bindings above, and
// defines loadA(i) / loadB(i) returning their vec4 number i.
{{OPERANDS}}

const HD4: u32 = {{HD4}}u;
const R: u32 = {{R}}u;
const WG: u32 = {{WG}}u;

// One key's work for query row i: score, softmax probability and the dk, dv updates of
// dka[r], dva[r]. Called with a literal r (the call site is unrolled), so after inlining every
// array index is constant and the tiles stay in registers. A function rather than inline code
// because naga's WGSL compile time grows with the square of a function's size (see
// attention_fwd.wgsl).
fn keyRow(
  r: u32,
  key: u32,
  i: u32,
  lse_i: f32,
  dsum_i: f32,
  kr: ptr<function, array<vec4<f32>, R * HD4>>,
  vr: ptr<function, array<vec4<f32>, R * HD4>>,
  dka: ptr<function, array<vec4<f32>, R * HD4>>,
  dva: ptr<function, array<vec4<f32>, R * HD4>>,
  qi: ptr<function, array<vec4<f32>, HD4>>,
  doi: ptr<function, array<vec4<f32>, HD4>>,
) {
  var sv = vec4<f32>(0.0);
  var pv = vec4<f32>(0.0);
  for (var d = 0u; d < HD4; d++) { // @unroll
    sv = fma((*qi)[d], (*kr)[r * HD4 + d], sv);
    pv = fma((*doi)[d], (*vr)[r * HD4 + d], pv);
  }
  var z = sv.x + sv.y + sv.z + sv.w;
  var dz = 1.0;
  if (p.softcap > 0.0) {
    let t = tanh(z / p.softcap);
    z = p.softcap * t;
    dz = 1.0 - t * t;
  }
  let ok = key <= i && (p.window == 0u || key + p.window > i);
  let pij = select(0.0, exp(z - lse_i), ok);
  let ds = pij * (pv.x + pv.y + pv.z + pv.w - dsum_i) * dz;
  for (var d = 0u; d < HD4; d++) { // @unroll
    (*dva)[r * HD4 + d] = fma(vec4<f32>(pij), (*doi)[d], (*dva)[r * HD4 + d]);
    (*dka)[r * HD4 + d] = fma(vec4<f32>(ds), (*qi)[d], (*dka)[r * HD4 + d]);
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wg.y;
  let qStride = p.H * HD4;
  let kStride = p.KV * HD4;
  let wgKey0 = wg.x * R * WG;
  let key0 = wgKey0 + li * R;
  // Uniform query range: every row that may see a key of this workgroup.
  let lastKey = min(p.S, wgKey0 + R * WG) - 1u;
  var iEnd = p.S;
  if (p.window > 0u) {
    iEnd = min(p.S, lastKey + p.window);
  }
  // Query heads of kv head g: ceil(g·H / KV) .. ceil((g+1)·H / KV) − 1.
  let hLo = (g * p.H + p.KV - 1u) / p.KV;
  let hHi = ((g + 1u) * p.H + p.KV - 1u) / p.KV;

  var kr: array<vec4<f32>, R * HD4>;
  var vr: array<vec4<f32>, R * HD4>;
  var dka: array<vec4<f32>, R * HD4>;
  var dva: array<vec4<f32>, R * HD4>;
  for (var r = 0u; r < R; r++) { // @unroll
    let key = min(key0 + r, p.S - 1u);
    for (var d = 0u; d < HD4; d++) { // @unroll
      let i = key * kStride + g * HD4 + d;
      kr[r * HD4 + d] = vec4<f32>(k[i]) * p.scale;
      vr[r * HD4 + d] = vec4<f32>(v[i]);
      dka[r * HD4 + d] = vec4<f32>(0.0);
      dva[r * HD4 + d] = vec4<f32>(0.0);
    }
  }

  for (var h = hLo; h < hHi; h++) {
    for (var i = wgKey0; i < iEnd; i++) {
      let qb = i * qStride + h * HD4;
      var qi: array<vec4<f32>, HD4>;
      var doi: array<vec4<f32>, HD4>;
      for (var d = 0u; d < HD4; d++) { // @unroll
        qi[d] = loadA(qb + d);
        doi[d] = loadB(qb + d);
      }
      let li_ = lse[h * p.S + i];
      let di = dsum[h * p.S + i];
      for (var r = 0u; r < R; r++) { // @unroll
        keyRow(r, key0 + r, i, li_, di, &kr, &vr, &dka, &dva, &qi, &doi);
      }
    }
  }

  for (var r = 0u; r < R; r++) { // @unroll
    let key = key0 + r;
    if (key < p.S) {
      for (var d = 0u; d < HD4; d++) { // @unroll
        dk[key * kStride + g * HD4 + d] = vec4<SF>(dka[r * HD4 + d] * p.scale);
        dv[key * kStride + g * HD4 + d] = vec4<SF>(dva[r * HD4 + d]);
      }
    }
  }
}
