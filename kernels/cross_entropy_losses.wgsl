// Cross-entropy losses per row, numerically stable (online max/sum over V):
//   z = c · tanh(x / c) when softcap c > 0, else z = x
//   loss[n] = log Σ_v exp(z[n,v]) − z[n, target[n]];   0 when target[n] = ignore_index;
//   NaN when target[n] is outside 0..V-1 (and not ignored).
//
// Bindings:  @group(0) @binding(0) logits  : array<f32>  (N, V)
//            @group(0) @binding(1) targets : array<i32>  (N)
//            @group(0) @binding(2) losses  : array<f32>  (N)   written
//            @group(1) @binding(0) p       : Params { N, V, softcap, ignore_index, nx }
// Dispatch:  grid1d(N) — one workgroup of 128 per row (threads stride over V, then a tree
//            reduction of (max, sum) pairs); row = wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { N: u32, V: u32, softcap: f32, ignore_index: i32, nx: u32 }

@group(0) @binding(0) var<storage, read> logits: array<SF>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG = 128u;
const LOWEST = -3.0e38;
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

fn capped(x: f32) -> f32 {
  if (p.softcap > 0.0) {
    return p.softcap * tanh(clamp(x / p.softcap, -10.0, 10.0));
  }
  return x;
}

// A quiet NaN, read at run time: WGSL makes a NaN from a constant expression an error
// (Chromium's Tint rejects `bitcast<f32>(0x7fc00000u)`; naga folded it).
var<private> NAN_BITS: u32 = 0x7fc00000u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * p.nx + wg.x;
  if (row >= p.N) {
    return;
  }
  let base = row * p.V;
  var m = LOWEST;
  var s = 0.0;
  for (var v = li; v < p.V; v += WG) {
    let z = capped(f32(logits[base + v]));
    if (z > m) {
      s = s * exp(m - z) + 1.0;
      m = z;
    } else {
      s += exp(z - m);
    }
  }
  red_m[li] = m;
  red_s[li] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) {
      let m1 = red_m[li];
      let m2 = red_m[li + k];
      let mm = max(m1, m2);
      red_s[li] = red_s[li] * exp(m1 - mm) + red_s[li + k] * exp(m2 - mm);
      red_m[li] = mm;
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    let t = targets[row];
    if (t == p.ignore_index) {
      losses[row] = 0.0;
    } else if (t < 0 || u32(t) >= p.V) {
      losses[row] = bitcast<f32>(NAN_BITS);
    } else {
      losses[row] = log(red_s[0]) + red_m[0] - capped(f32(logits[base + u32(t)]));
    }
  }
}
