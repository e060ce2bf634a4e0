// Causal grouped-query attention, forward (FlashAttention-style online softmax).
//
// Each invocation owns R consecutive query rows of one head (wgRow0 + li·R + r) and keeps
// their (pre-scaled) q rows, output accumulators and running max / sum in registers. It
// streams the visible keys in chunks of C: a chunk's k and v rows are loaded once (uniform
// texture loads) and reused by all R rows; accumulators are rescaled once per chunk. Masks
// (causal, window, past the end) are only evaluated on chunks that are not visible to every
// row of the workgroup. Scores live in the log2 domain (q pre-scaled by scale·log2 e, or the
// soft-cap multiplied by log2 e) so the softmax uses exp2. Nothing S×S is stored.
// (Interleaving the rows over the invocations, wgRow0 + r·WG + li, measured 2.5× slower on
// lavapipe, so fully masked row blocks on the diagonal are not skipped.)
//
// Bindings:  @group(0) @binding(0) q     : array<vec4<f32>>  (S, H·hd)
//            @group(0) @binding(1) out   : array<vec4<f32>>  (S, H·hd)   written
//            @group(0) @binding(2) lse   : array<f32>        (H, S)      written, natural log
//            @group(1) @binding(0) p     : Params { S, H, KV, window (0 = none),
//                                                   scale, softcap (0 = none) }
//            @group(2) @binding(0) a_tex : texture_2d<f32>   k (S, KV·hd) staged (texture.ts)
//            @group(2) @binding(1) b_tex : texture_2d<f32>   v (S, KV·hd) staged
//            (A tensor too large to stage is bound as storage instead, at @group(0)
//            @binding(3) and (4).)
//            (k and v are read once per key chunk; textureLoad is far cheaper than a storage
//            load on lavapipe.)
// Template:  HD4 = hd / 4, R = query rows per invocation, C = keys per chunk,
//            WG = workgroup size.
//            Loops marked `// @unroll` are unrolled by lib/ops/unroll.ts (constant indices
//            keep the register tiles in registers).
// Dispatch:  (ceil(S / (R·WG)), H, 1); head h reads kv head floor(h·KV / H).

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)

@group(0) @binding(0) var<storage, read> q: array<vec4<SF>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<SF>>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;
#include "attention_common"
#include "attention_key_chunk"

const C: u32 = {{C}}u;
// Masked scores; the running max starts at FLOOR, so exp2(NEG − max) is exactly 0.
const NEG: f32 = -3.0e38;
const FLOOR: f32 = -1.0e30;
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

// One row's work on one key chunk: scores, masks, online-softmax update of m[r], l[r] and
// acc[r]. Called with a literal r (the call site is unrolled), so after inlining every array
// index is constant and the tiles stay in registers. It is a function rather than inline code
// because WGSL compile time in naga grows with the square of a function's size: R copies of
// this body in `main` cost seconds per pipeline, R calls cost milliseconds.
fn rowChunk(
  r: u32,
  row: u32,
  j0: u32,
  jEnd: u32,
  masked: bool,
  cap2: f32,
  invCap: f32,
  qr: ptr<function, array<vec4<f32>, R * HD4>>,
  acc: ptr<function, array<vec4<f32>, R * HD4>>,
  m: ptr<function, array<f32, R>>,
  l: ptr<function, array<f32, R>>,
  kc: ptr<function, array<vec4<f32>, C * HD4>>,
  vc: ptr<function, array<vec4<f32>, C * HD4>>,
) {
  var s: array<f32, C>;
  for (var c = 0u; c < C; c++) { // @unroll
    var dv = vec4<f32>(0.0);
    for (var d = 0u; d < HD4; d++) { // @unroll
      dv = fma((*qr)[r * HD4 + d], (*kc)[c * HD4 + d], dv);
    }
    s[c] = dv.x + dv.y + dv.z + dv.w;
  }
  if (CAPPED) {
    for (var c = 0u; c < C; c++) { // @unroll
      s[c] = cap2 * tanh(s[c] * invCap);
    }
  }
  if (masked) {
    for (var c = 0u; c < C; c++) { // @unroll
      let j = j0 + c;
      let ok = j < jEnd && j <= row && (!WINDOWED || j + p.window > row);
      s[c] = select(NEG, s[c], ok);
    }
  }
  var mx = (*m)[r];
  for (var c = 0u; c < C; c++) { // @unroll
    mx = max(mx, s[c]);
  }
  let alpha = exp2((*m)[r] - mx);
  (*m)[r] = mx;
  var sum = (*l)[r] * alpha;
  for (var c = 0u; c < C; c++) { // @unroll
    s[c] = exp2(s[c] - mx);
    sum += s[c];
  }
  (*l)[r] = sum;
  for (var d = 0u; d < HD4; d++) { // @unroll
    var a = (*acc)[r * HD4 + d] * alpha;
    for (var c = 0u; c < C; c++) { // @unroll
      a = fma(vec4<f32>(s[c]), (*vc)[c * HD4 + d], a);
    }
    (*acc)[r * HD4 + d] = a;
  }
}

// One key chunk [j0, j0 + C) for all R rows of this invocation: the chunk's k and v rows are
// loaded once and reused by every row. `masked` (a literal at each call site) adds the causal,
// window and end-of-sequence masks; chunks visible to every row of the workgroup skip them.
fn keyChunk(
  j0: u32,
  masked: bool,
  row0: u32,
  jEnd: u32,
  g: u32,
  cap2: f32,
  invCap: f32,
  qr: ptr<function, array<vec4<f32>, R * HD4>>,
  acc: ptr<function, array<vec4<f32>, R * HD4>>,
  m: ptr<function, array<f32, R>>,
  l: ptr<function, array<f32, R>>,
) {
  var kc: array<vec4<f32>, C * HD4>;
  var vc: array<vec4<f32>, C * HD4>;
  loadKeyChunk(j0, g, &kc, &vc);
  for (var r = 0u; r < R; r++) { // @unroll
    rowChunk(r, row0 + r, j0, jEnd, masked, cap2, invCap, qr, acc, m, l, &kc, &vc);
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
  // Uniform key range [jStart, jEnd): every key some row of this workgroup may see.
  let jEnd = min(p.S, wgRow0 + R * WG);
  var jStart = 0u;
  if (WINDOWED && wgRow0 + 1u > p.window) {
    jStart = wgRow0 + 1u - p.window;
  }
  let qScale = select(p.scale * LOG2E, p.scale, CAPPED);
  let cap2 = p.softcap * LOG2E;
  let invCap = 1.0 / max(p.softcap, 1e-30);

  var qr: array<vec4<f32>, R * HD4>;
  var acc: array<vec4<f32>, R * HD4>;
  var m: array<f32, R>;
  var l: array<f32, R>;
  for (var r = 0u; r < R; r++) { // @unroll
    let row = min(row0 + r, p.S - 1u);
    for (var d = 0u; d < HD4; d++) { // @unroll
      qr[r * HD4 + d] = vec4<f32>(q[row * qStride + h * HD4 + d]) * qScale;
      acc[r * HD4 + d] = vec4<f32>(0.0);
    }
    m[r] = FLOOR;
    l[r] = 0.0;
  }

  if (WINDOWED) {
    // Sliding window (rare): every chunk masked.
    for (var j0 = jStart; j0 < jEnd; j0 += C) {
      keyChunk(j0, true, row0, jEnd, g, cap2, invCap, &qr, &acc, &m, &l);
    }
  } else {
    // Keys [0, wgRow0] are visible to every row of the workgroup: whole chunks of them run
    // unmasked; the rest (the diagonal block) is masked. Loops are real branches on
    // lavapipe, so the masks cost nothing on the unmasked chunks.
    let fullEnd = (wgRow0 + 1u) / C * C;
    for (var j0 = 0u; j0 < fullEnd; j0 += C) {
      keyChunk(j0, false, row0, jEnd, g, cap2, invCap, &qr, &acc, &m, &l);
    }
    for (var j0 = fullEnd; j0 < jEnd; j0 += C) {
      keyChunk(j0, true, row0, jEnd, g, cap2, invCap, &qr, &acc, &m, &l);
    }
  }

  for (var r = 0u; r < R; r++) { // @unroll
    let row = row0 + r;
    if (row < p.S) {
      let inv = 1.0 / l[r];
      for (var d = 0u; d < HD4; d++) { // @unroll
        out[row * qStride + h * HD4 + d] = vec4<SF>(acc[r * HD4 + d] * inv);
      }
      lse[h * p.S + row] = (m[r] + log2(l[r])) * LN2;
    }
  }
}
