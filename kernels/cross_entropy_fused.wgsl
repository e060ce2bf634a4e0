// Cross-entropy of logit rows: the loss, the logit gradient, or both (the fused forward +
// backward of a head chunk). With z = c · tanh(x / c) when softcap c > 0 (else z = x) and
// lse = log Σ_v exp(z):
//   loss[n]    = lse − z[target]                                  (LOSS)
//   grad[n, v] = gradScale · (exp(z − lse) − [v = target]) · dz/dx  (GRAD; dz/dx = 1 − (z/c)²)
// Ignored rows (target = ignore_index) get loss 0 and a zero gradient; a target outside
// 0..V-1 gives NaN.
//
// L threads share a row; thread l holds the row's vec4 texels l, l + L, …, l + (K−1)·L in
// registers, so the row is read from memory once: the statistics and the gradient come from
// the registers. Texels past L·K (TAIL: vocabularies too large for the registers) are streamed
// with an online max/sum and read again for the gradient. Every read of a row happens before
// the workgroup's first barrier and every write after its last, and each thread writes only
// the texels it read, so the in-place gradient (grad over the logits' own storage) is
// race-free.
//
// Bindings (declared by the template value BINDINGS, lib/ops/cross_entropy.ts):
//            logits  : array<vec4<SF>>   (N, V/4)  read (read_write when the gradient is
//                                                   written in place)
//            targets : array<i32>        (N)
//            losses  : array<f32>        (N)       written (LOSS)
//            dlogits : array<vec4<SF>>   (N, V/4)  written (GRAD, out of place)
//            @group(1) @binding(0) p : Params { N, V4 = V/4, softcap, ignore_index, grad_scale, nx }
// Template:  BINDINGS (the declarations and ld(i), st(i, v), putLoss(row, v); the unused
//            ones are empty functions), L (threads per row, a power of two), R (rows per
//            workgroup), K (register texels per thread), LOSS, GRAD, CAPPED (softcap > 0),
//            TAIL (V/4 > L·K) (true / false). Loops marked `// @unroll` are unrolled by
//            lib/ops/unroll.ts so the register texels keep constant indices.
// Dispatch:  grid1d(ceil(N / R)) — R rows of L threads per workgroup;
//            row = (wg.y * nx + wg.x) * R + local index / L.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { N: u32, V4: u32, softcap: f32, ignore_index: i32, grad_scale: f32, nx: u32 }

@group(1) @binding(0) var<uniform> p: Params;
{{BINDINGS}}

const L = {{L}}u;
const R = {{R}}u;
const K = {{K}}u;
const LOSS = {{LOSS}};
const GRAD = {{GRAD}};
const CAPPED = {{CAPPED}};
const TAIL = {{TAIL}};
const THREADS = L * R;
const LANES = L;
#include "cross_entropy_common"

fn capped(x: vec4<f32>) -> vec4<f32> {
  if (CAPPED) {
    return p.softcap * tanh(clamp(x / p.softcap, vec4<f32>(-10.0), vec4<f32>(10.0)));
  }
  return x;
}

// gradScale · (softmax − onehot) · dz/dx of texel i (logits v = 4i … 4i + 3) whose capped
// logits are z; gs is gradScale (NaN for an invalid target), zero for an ignored row.
fn gradient(z: vec4<f32>, lse: f32, i: u32, t: i32, gs: f32, ignored: bool) -> vec4<f32> {
  let v0 = i32(4u * i);
  var g = exp(z - vec4<f32>(lse));
  g -= select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<i32>(v0, v0 + 1, v0 + 2, v0 + 3) == vec4<i32>(t));
  if (CAPPED) {
    let r = z / p.softcap;
    g *= 1.0 - r * r;
  }
  return select(g * gs, vec4<f32>(0.0), vec4<bool>(ignored));
}

@compute @workgroup_size(L * R)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let l = li % L;
  let own = (wg.y * p.nx + wg.x) * R + li / L;
  // Threads past the last row work on it too (their barriers must be reached) but write nothing.
  let live = own < p.N;
  let row = min(own, p.N - 1u);
  let base = row * p.V4;
  let t = targets[row];
  let ignored = t == p.ignore_index;
  let invalid = !ignored && (t < 0 || u32(t) >= 4u * p.V4);
  let tv = select(0u, u32(t), !ignored && !invalid);
  let zt = capped(ld(base + tv / 4u))[tv % 4u];

  var z: array<vec4<f32>, K>;
  var mv = vec4<f32>(LOWEST);
  for (var k = 0u; k < K; k++) { // @unroll
    let i = l + k * L;
    z[k] = select(vec4<f32>(LOWEST), capped(ld(base + min(i, p.V4 - 1u))), vec4<bool>(i < p.V4));
    mv = max(mv, z[k]);
  }
  var m = max(max(mv.x, mv.y), max(mv.z, mv.w));
  var sv = vec4<f32>(0.0);
  for (var k = 0u; k < K; k++) { // @unroll
    sv += exp(z[k] - vec4<f32>(m));
  }
  var s = sv.x + sv.y + sv.z + sv.w;
  if (TAIL) {
    for (var i = l + K * L; i < p.V4; i += L) {
      let zi = capped(ld(base + i));
      let mz = max(max(zi.x, zi.y), max(zi.z, zi.w));
      if (mz > m) {
        s *= exp(m - mz);
        m = mz;
      }
      let e = exp(zi - vec4<f32>(m));
      s += e.x + e.y + e.z + e.w;
    }
  }

  mergeMaxSum(li, l, m, s);
  let first = li - l;
  let lse = red_m[first] + log(red_s[first]);

  if (LOSS && live && l == 0u) {
    let nan = bitcast<f32>(NAN_BITS);
    putLoss(row, select(select(lse - zt, nan, invalid), 0.0, ignored));
  }
  if (GRAD && live) {
    let gs = select(p.grad_scale, bitcast<f32>(NAN_BITS), invalid);
    for (var k = 0u; k < K; k++) { // @unroll
      let i = l + k * L;
      if (i < p.V4) {
        st(base + i, gradient(z[k], lse, i, t, gs, ignored));
      }
    }
    if (TAIL) {
      for (var i = l + K * L; i < p.V4; i += L) {
        st(base + i, gradient(capped(ld(base + i)), lse, i, t, gs, ignored));
      }
    }
  }
}
