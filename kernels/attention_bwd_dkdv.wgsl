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
// Template:  HD4 = hd / 4, R = keys per invocation, Q = query rows per chunk,
//            WG = workgroup size, CAPPED / WINDOWED = 1 with a soft-cap / window.
//            Loops marked `// @unroll` are unrolled by lib/ops/unroll.ts (constant indices
//            keep the register tiles in registers).
// Dispatch:  (ceil(S / (R·WG)), KV, 1).

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)

@group(0) @binding(0) var<storage, read> k: array<vec4<SF>>;
@group(0) @binding(1) var<storage, read> v: array<vec4<SF>>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> dsum: array<f32>;
@group(0) @binding(4) var<storage, read_write> dk: array<vec4<SF>>;
@group(0) @binding(5) var<storage, read_write> dv: array<vec4<SF>>;
@group(1) @binding(0) var<uniform> p: Params;
#include "attention_common"

const Q: u32 = {{Q}}u;

// One key's work on a query chunk [i0, i0 + Q): scores, softmax probabilities and the dk, dv
// updates of dka[r], dva[r]. The Q terms are summed in registers before dka[r] / dva[r] are
// read and written once per chunk: on lavapipe the register tiles live in (spilled) stack
// memory, and one read-modify-write per query row made the kernel ~2× slower. Called with a
// literal r (the call site is unrolled), so after inlining every array index is constant and
// the tiles stay in registers. A function rather than inline code because naga's WGSL compile
// time grows with the square of a function's size (see attention_fwd.wgsl).
fn keyChunk(
  r: u32,
  key: u32,
  i0: u32,
  masked: bool,
  lq: ptr<function, array<f32, Q>>,
  dq: ptr<function, array<f32, Q>>,
  kr: ptr<function, array<vec4<f32>, R * HD4>>,
  vr: ptr<function, array<vec4<f32>, R * HD4>>,
  dka: ptr<function, array<vec4<f32>, R * HD4>>,
  dva: ptr<function, array<vec4<f32>, R * HD4>>,
  qc: ptr<function, array<vec4<f32>, Q * HD4>>,
  doc: ptr<function, array<vec4<f32>, Q * HD4>>,
) {
  var pq: array<f32, Q>;
  var ds: array<f32, Q>;
  for (var c = 0u; c < Q; c++) { // @unroll
    var sv = vec4<f32>(0.0);
    var pv = vec4<f32>(0.0);
    for (var d = 0u; d < HD4; d++) { // @unroll
      sv = fma((*qc)[c * HD4 + d], (*kr)[r * HD4 + d], sv);
      pv = fma((*doc)[c * HD4 + d], (*vr)[r * HD4 + d], pv);
    }
    var z = sv.x + sv.y + sv.z + sv.w;
    var dz = 1.0;
    if (CAPPED) {
      let t = tanh(z / p.softcap);
      z = p.softcap * t;
      dz = 1.0 - t * t;
    }
    var pij = exp(z - (*lq)[c]);
    if (masked) {
      let i = i0 + c;
      pij = select(0.0, pij, key <= i && i < p.S && (!WINDOWED || key + p.window > i));
    }
    var x = pij * (pv.x + pv.y + pv.z + pv.w - (*dq)[c]);
    if (CAPPED) {
      x *= dz;
    }
    pq[c] = pij;
    ds[c] = x;
  }
  for (var d = 0u; d < HD4; d++) { // @unroll
    var a = (*dva)[r * HD4 + d];
    var b = (*dka)[r * HD4 + d];
    for (var c = 0u; c < Q; c++) { // @unroll
      a = fma(vec4<f32>(pq[c]), (*doc)[c * HD4 + d], a);
      b = fma(vec4<f32>(ds[c]), (*qc)[c * HD4 + d], b);
    }
    (*dva)[r * HD4 + d] = a;
    (*dka)[r * HD4 + d] = b;
  }
}

// Query chunk [i0, i0 + Q) of head h for all R keys of this invocation: the chunk's q and dO
// rows are loaded once (clamped to the sequence; rows past its end are masked) and reused by
// every key. `masked` (a literal at each call site) adds the causal, window and end masks;
// chunks that see every key of the workgroup skip them.
fn queryChunk(
  i0: u32,
  h: u32,
  masked: bool,
  key0: u32,
  kr: ptr<function, array<vec4<f32>, R * HD4>>,
  vr: ptr<function, array<vec4<f32>, R * HD4>>,
  dka: ptr<function, array<vec4<f32>, R * HD4>>,
  dva: ptr<function, array<vec4<f32>, R * HD4>>,
) {
  var qc: array<vec4<f32>, Q * HD4>;
  var doc: array<vec4<f32>, Q * HD4>;
  var lq: array<f32, Q>;
  var dq: array<f32, Q>;
  for (var c = 0u; c < Q; c++) { // @unroll
    let i = min(i0 + c, p.S - 1u);
    let qb = i * p.H * HD4 + h * HD4;
    for (var d = 0u; d < HD4; d++) { // @unroll
      qc[c * HD4 + d] = loadA(qb + d);
      doc[c * HD4 + d] = loadB(qb + d);
    }
    lq[c] = lse[h * p.S + i];
    dq[c] = dsum[h * p.S + i];
  }
  for (var r = 0u; r < R; r++) { // @unroll
    keyChunk(r, key0 + r, i0, masked, &lq, &dq, kr, vr, dka, dva, &qc, &doc);
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wg.y;
  let kStride = p.KV * HD4;
  let wgKey0 = wg.x * R * WG;
  let key0 = wgKey0 + li * R;
  // Uniform query range: every row that may see a key of this workgroup.
  let lastKey = min(p.S, wgKey0 + R * WG) - 1u;
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
    if (WINDOWED) {
      // Sliding window (rare): every chunk masked.
      let iEnd = min(p.S, lastKey + p.window);
      for (var i0 = wgKey0; i0 < iEnd; i0 += Q) {
        queryChunk(i0, h, true, key0, &kr, &vr, &dka, &dva);
      }
    } else {
      // Rows [wgKey0, lastKey) see only part of the workgroup's keys: masked, in nDiag
      // chunks up to uStart. Whole chunks of rows from there on see all of them: unmasked,
      // up to uEnd. One more masked chunk takes the rest [uEnd, S) (empty when uEnd = S).
      // Loops are real branches on lavapipe, so the masks cost nothing on unmasked chunks.
      let nDiag = (lastKey - wgKey0 + Q - 1u) / Q;
      let uStart = wgKey0 + nDiag * Q;
      let uEnd = select(uStart, uStart + (p.S - uStart) / Q * Q, uStart < p.S);
      for (var n = 0u; n <= nDiag; n++) {
        queryChunk(select(wgKey0 + n * Q, uEnd, n == nDiag), h, true, key0, &kr, &vr, &dka, &dva);
      }
      for (var i0 = uStart; i0 < uEnd; i0 += Q) {
        queryChunk(i0, h, false, key0, &kr, &vr, &dka, &dva);
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
