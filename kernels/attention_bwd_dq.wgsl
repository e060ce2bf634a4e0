// Causal grouped-query attention, backward part 1: dq and D = rowsum(dO ∘ O).
//
// Each invocation owns R consecutive query rows of one head. It computes D_i = dO_i · O_i
// (written to the workspace for the dk/dv kernel), keeps q (pre-scaled), dO and the dq
// accumulators in registers and streams the visible keys, recomputing
// P_ij = exp(z_ij − lse_i) with z = softcap(scale·q_i·k_j) and
// dS_ij = P_ij (dO_i·v_j − D_i) · dz/ds (dz/ds = 1 − tanh², or 1 without a soft-cap):
// dq_i = scale · Σ_j dS_ij k_j. Each row is written by exactly one invocation (race-free).
// Key loop bounds are uniform over the workgroup; causal / window masks are element-wise.
//
// Bindings:  @group(0) @binding(0) q     : array<vec4<f32>>  (S, H·hd)
//            @group(0) @binding(1) o     : array<vec4<f32>>  (S, H·hd)   forward output
//            @group(0) @binding(2) dO    : array<vec4<f32>>  (S, H·hd)
//            @group(0) @binding(3) lse   : array<f32>        (H, S)
//            @group(0) @binding(4) dq    : array<vec4<f32>>  (S, H·hd)   written
//            @group(0) @binding(5) dsum  : array<f32>        (H, S)      written: D
//            @group(1) @binding(0) p     : Params { S, H, KV, window (0 = none),
//                                                   scale, softcap (0 = none) }
//            @group(2) @binding(0) a_tex : texture_2d<f32>   k (S, KV·hd) staged (texture.ts)
//            @group(2) @binding(1) b_tex : texture_2d<f32>   v (S, KV·hd) staged
//            (A tensor too large to stage is bound as storage instead, at @group(0)
//            @binding(6) and (7).)
// Template:  HD4 = hd / 4, R = query rows per invocation, C = keys per chunk,
//            WG = workgroup size, CAPPED / WINDOWED = 1 with a soft-cap / window.
//            Loops marked `// @unroll` are unrolled by lib/ops/unroll.ts (constant indices
//            keep the register tiles in registers).
// Dispatch:  (ceil(S / (R·WG)), H, 1); head h reads kv head floor(h·KV / H).

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)

@group(0) @binding(0) var<storage, read> q: array<vec4<SF>>;
@group(0) @binding(1) var<storage, read> o: array<vec4<SF>>;
@group(0) @binding(2) var<storage, read> dO: array<vec4<SF>>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> dq: array<vec4<SF>>;
@group(0) @binding(5) var<storage, read_write> dsum: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;
#include "attention_common"
#include "attention_key_chunk"

const C: u32 = {{C}}u;

// One query row's work on a key chunk [j0, j0 + C): scores, softmax probabilities and the dq
// update of acc[r]. The C terms are summed in registers before acc[r] is read and written once
// per chunk: on lavapipe the register tiles live in (spilled) stack memory, and one
// read-modify-write of acc per key made the kernel ~2× slower. Called with a literal r (the
// call site is unrolled), so after inlining every array index is constant and the tiles stay
// in registers. A function rather than inline code because naga's WGSL compile time grows
// with the square of a function's size (see attention_fwd.wgsl).
fn rowChunk(
  r: u32,
  row: u32,
  j0: u32,
  masked: bool,
  qr: ptr<function, array<vec4<f32>, R * HD4>>,
  dor: ptr<function, array<vec4<f32>, R * HD4>>,
  acc: ptr<function, array<vec4<f32>, R * HD4>>,
  lr: ptr<function, array<f32, R>>,
  dr: ptr<function, array<f32, R>>,
  kc: ptr<function, array<vec4<f32>, C * HD4>>,
  vc: ptr<function, array<vec4<f32>, C * HD4>>,
) {
  var ds: array<f32, C>;
  for (var c = 0u; c < C; c++) { // @unroll
    var sv = vec4<f32>(0.0);
    var pv = vec4<f32>(0.0);
    for (var d = 0u; d < HD4; d++) { // @unroll
      sv = fma((*qr)[r * HD4 + d], (*kc)[c * HD4 + d], sv);
      pv = fma((*dor)[r * HD4 + d], (*vc)[c * HD4 + d], pv);
    }
    var z = sv.x + sv.y + sv.z + sv.w;
    var dz = 1.0;
    if (CAPPED) {
      let t = tanh(z / p.softcap);
      z = p.softcap * t;
      dz = 1.0 - t * t;
    }
    var pij = exp(z - (*lr)[r]);
    if (masked) {
      let j = j0 + c;
      pij = select(0.0, pij, j <= row && (!WINDOWED || j + p.window > row));
    }
    var x = pij * (pv.x + pv.y + pv.z + pv.w - (*dr)[r]);
    if (CAPPED) {
      x *= dz;
    }
    ds[c] = x;
  }
  for (var d = 0u; d < HD4; d++) { // @unroll
    var a = (*acc)[r * HD4 + d];
    for (var c = 0u; c < C; c++) { // @unroll
      a = fma(vec4<f32>(ds[c]), (*kc)[c * HD4 + d], a);
    }
    (*acc)[r * HD4 + d] = a;
  }
}

// Key chunk [j0, j0 + C) for all R rows of this invocation: the chunk's k and v rows are
// loaded once (clamped to the sequence; keys past a row are masked) and reused by every row.
// `masked` (a literal at each call site) adds the causal and window masks; chunks visible to
// every row of the workgroup skip them.
fn keyChunk(
  j0: u32,
  masked: bool,
  row0: u32,
  g: u32,
  qr: ptr<function, array<vec4<f32>, R * HD4>>,
  dor: ptr<function, array<vec4<f32>, R * HD4>>,
  acc: ptr<function, array<vec4<f32>, R * HD4>>,
  lr: ptr<function, array<f32, R>>,
  dr: ptr<function, array<f32, R>>,
) {
  var kc: array<vec4<f32>, C * HD4>;
  var vc: array<vec4<f32>, C * HD4>;
  loadKeyChunk(j0, g, &kc, &vc);
  for (var r = 0u; r < R; r++) { // @unroll
    rowChunk(r, row0 + r, j0, masked, qr, dor, acc, lr, dr, &kc, &vc);
  }
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let h = wg.y;
  let g = h * p.KV / p.H;
  let qStride = p.H * HD4;
  // Row blocks in reverse: the last rows see the most keys, so they start first and the
  // short blocks fill the cores at the end (causal work grows with the row index).
  let wgRow0 = (nwg.x - 1u - wg.x) * R * WG;
  let row0 = wgRow0 + li * R;
  let jEnd = min(p.S, wgRow0 + R * WG);

  var qr: array<vec4<f32>, R * HD4>;
  var dor: array<vec4<f32>, R * HD4>;
  var acc: array<vec4<f32>, R * HD4>;
  var lr: array<f32, R>;
  var dr: array<f32, R>;
  for (var r = 0u; r < R; r++) { // @unroll
    let row = min(row0 + r, p.S - 1u);
    var dd = vec4<f32>(0.0);
    for (var d = 0u; d < HD4; d++) { // @unroll
      let i = row * qStride + h * HD4 + d;
      qr[r * HD4 + d] = vec4<f32>(q[i]) * p.scale;
      let x = vec4<f32>(dO[i]);
      dor[r * HD4 + d] = x;
      dd = fma(x, vec4<f32>(o[i]), dd);
      acc[r * HD4 + d] = vec4<f32>(0.0);
    }
    dr[r] = dd.x + dd.y + dd.z + dd.w;
    lr[r] = lse[h * p.S + row];
  }

  if (WINDOWED) {
    // Sliding window (rare): every key masked.
    var jStart = 0u;
    if (wgRow0 + 1u > p.window) {
      jStart = wgRow0 + 1u - p.window;
    }
    for (var j0 = jStart; j0 < jEnd; j0 += C) {
      keyChunk(j0, true, row0, g, &qr, &dor, &acc, &lr, &dr);
    }
  } else {
    // Keys [0, wgRow0] are visible to every row of the workgroup: whole chunks of them run
    // unmasked; the rest (the diagonal block) is masked. Loops are real branches on
    // lavapipe, so the masks cost nothing on the unmasked chunks.
    let fullEnd = (wgRow0 + 1u) / C * C;
    for (var j0 = 0u; j0 < fullEnd; j0 += C) {
      keyChunk(j0, false, row0, g, &qr, &dor, &acc, &lr, &dr);
    }
    for (var j0 = fullEnd; j0 < jEnd; j0 += C) {
      keyChunk(j0, true, row0, g, &qr, &dor, &acc, &lr, &dr);
    }
  }

  for (var r = 0u; r < R; r++) { // @unroll
    let row = row0 + r;
    if (row < p.S) {
      for (var d = 0u; d < HD4; d++) { // @unroll
        dq[row * qStride + h * HD4 + d] = vec4<SF>(acc[r * HD4 + d] * p.scale);
      }
      dsum[h * p.S + row] = dr[r];
    }
  }
}
