// Causal grouped-query attention, forward (FlashAttention-style online softmax).
//
// Each invocation owns R consecutive query rows of one head and keeps their (pre-scaled)
// q rows and output accumulators in registers; it streams the visible keys in chunks of C,
// rescaling its accumulators once per chunk. Nothing S×S is ever stored. The key loop
// bounds are uniform over the workgroup (so k/v loads are uniform, not gathers); per-row
// causal / window masks are applied element-wise.
//
// Bindings:  @group(0) @binding(0) q   : array<vec4<f32>>  (S, H·hd)
//            @group(0) @binding(1) k   : array<vec4<f32>>  (S, KV·hd)
//            @group(0) @binding(2) v   : array<vec4<f32>>  (S, KV·hd)
//            @group(0) @binding(3) out : array<vec4<f32>>  (S, H·hd)   written
//            @group(0) @binding(4) lse : array<f32>        (H, S)      written, natural log
//            @group(1) @binding(0) p   : Params { S, H, KV, window (0 = none),
//                                                 scale, softcap (0 = none) }
// Template:  HD4 = hd / 4, R = query rows per invocation, C = keys per chunk,
//            WG = workgroup size.
//            Loops marked `// @unroll` are unrolled by lib/ops/unroll.ts (constant indices
//            keep the register tiles in registers).
// Dispatch:  (ceil(S / (R·WG)), H, 1); head h reads kv head floor(h·KV / H).

struct Params { S: u32, H: u32, KV: u32, window: u32, scale: f32, softcap: f32 }

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const HD4: u32 = {{HD4}}u;
const R: u32 = {{R}}u;
const C: u32 = {{C}}u;
const WG: u32 = {{WG}}u;
const NEG: f32 = -3.0e38;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wg.y;
  let g = h * p.KV / p.H;
  let qStride = p.H * HD4;
  let kStride = p.KV * HD4;
  let wgRow0 = wg.x * R * WG;
  let row0 = wgRow0 + li * R;
  // Uniform key range: every key some row of this workgroup may see.
  let jEnd = min(p.S, wgRow0 + R * WG);
  var jStart = 0u;
  if (p.window > 0u && wgRow0 + 1u > p.window) {
    jStart = wgRow0 + 1u - p.window;
  }

  var qr: array<vec4<f32>, R * HD4>;
  var acc: array<vec4<f32>, R * HD4>;
  var m: array<f32, R>;
  var l: array<f32, R>;
  for (var r = 0u; r < R; r++) { // @unroll
    let row = min(row0 + r, p.S - 1u);
    for (var d = 0u; d < HD4; d++) { // @unroll
      qr[r * HD4 + d] = q[row * qStride + h * HD4 + d] * p.scale;
      acc[r * HD4 + d] = vec4<f32>(0.0);
    }
    m[r] = NEG;
    l[r] = 0.0;
  }

  for (var j0 = jStart; j0 < jEnd; j0 += C) {
    var s: array<f32, R * C>;
    for (var c = 0u; c < C; c++) { // @unroll
      let j = j0 + c;
      let kb = min(j, p.S - 1u) * kStride + g * HD4;
      var kj: array<vec4<f32>, HD4>;
      for (var d = 0u; d < HD4; d++) { // @unroll
        kj[d] = k[kb + d];
      }
      for (var r = 0u; r < R; r++) { // @unroll
        var dv = vec4<f32>(0.0);
        for (var d = 0u; d < HD4; d++) { // @unroll
          dv = fma(qr[r * HD4 + d], kj[d], dv);
        }
        var sc = dv.x + dv.y + dv.z + dv.w;
        if (p.softcap > 0.0) {
          sc = p.softcap * tanh(sc / p.softcap);
        }
        let row = row0 + r;
        let ok = j < jEnd && j <= row && (p.window == 0u || j + p.window > row);
        s[r * C + c] = select(NEG, sc, ok);
      }
    }
    for (var r = 0u; r < R; r++) { // @unroll
      var mx = m[r];
      for (var c = 0u; c < C; c++) { // @unroll
        mx = max(mx, s[r * C + c]);
      }
      let alpha = exp(m[r] - mx);
      m[r] = mx;
      var sum = l[r] * alpha;
      for (var c = 0u; c < C; c++) { // @unroll
        let e = select(0.0, exp(s[r * C + c] - mx), s[r * C + c] > NEG);
        s[r * C + c] = e;
        sum += e;
      }
      l[r] = sum;
      for (var d = 0u; d < HD4; d++) { // @unroll
        acc[r * HD4 + d] *= alpha;
      }
    }
    for (var c = 0u; c < C; c++) { // @unroll
      let vb = min(j0 + c, p.S - 1u) * kStride + g * HD4;
      for (var d = 0u; d < HD4; d++) { // @unroll
        let vv = v[vb + d];
        for (var r = 0u; r < R; r++) { // @unroll
          acc[r * HD4 + d] = fma(vec4<f32>(s[r * C + c]), vv, acc[r * HD4 + d]);
        }
      }
    }
  }

  for (var r = 0u; r < R; r++) { // @unroll
    let row = row0 + r;
    if (row < p.S) {
      let inv = 1.0 / l[r];
      for (var d = 0u; d < HD4; d++) { // @unroll
        out[row * qStride + h * HD4 + d] = acc[r * HD4 + d] * inv;
      }
      lse[h * p.S + row] = m[r] + log(l[r]);
    }
  }
}
