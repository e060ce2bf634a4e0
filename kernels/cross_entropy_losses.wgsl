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

#include "cross_entropy_rows"

fn logit(i: u32) -> f32 {
  return f32(logits[i]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * p.nx + wg.x;
  if (row >= p.N) {
    return;
  }
  let base = row * p.V;
  let stats = rowMaxSum(base, li);
  if (li == 0u) {
    let t = targets[row];
    if (t == p.ignore_index) {
      losses[row] = 0.0;
    } else if (t < 0 || u32(t) >= p.V) {
      losses[row] = bitcast<f32>(NAN_BITS);
    } else {
      losses[row] = log(stats.y) + stats.x - capped(logit(base + u32(t)));
    }
  }
}
