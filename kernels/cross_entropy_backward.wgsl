// Cross-entropy backward, in place over a buffer holding the logits:
//   buf[n,v] ← gradScale · (softmax(z[n])[v] − [v = target[n]]) · dz/dx
// with z = c · tanh(x / c), dz/dx = 1 − (z/c)² when softcap c > 0 (else z = x, dz/dx = 1).
// Rows whose target is ignore_index become 0; rows with a target outside 0..V-1 become NaN.
// Each thread rewrites only the columns it read, so the in-place update is race-free.
//
// Bindings:  @group(0) @binding(0) buf     : array<f32>  (N, V)   read_write: logits in, dlogits out
//            @group(0) @binding(1) targets : array<i32>  (N)
//            @group(1) @binding(0) p       : Params { N, V, softcap, ignore_index, grad_scale, nx }
// Dispatch:  grid1d(N) — one workgroup of 128 per row; row = wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { N: u32, V: u32, softcap: f32, ignore_index: i32, grad_scale: f32, nx: u32 }

@group(0) @binding(0) var<storage, read_write> buf: array<SF>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(1) @binding(0) var<uniform> p: Params;

#include "cross_entropy_rows"

fn logit(i: u32) -> f32 {
  return f32(buf[i]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * p.nx + wg.x;
  if (row >= p.N) {
    return;
  }
  let base = row * p.V;
  let stats = rowMaxSum(base, li);
  let mx = stats.x;
  let inv_sum = 1.0 / stats.y;
  let t = targets[row];
  let ignored = t == p.ignore_index;
  let invalid = !ignored && (t < 0 || u32(t) >= p.V);
  for (var v = li; v < p.V; v += WG) {
    let i = base + v;
    var g = 0.0;
    if (invalid) {
      g = bitcast<f32>(NAN_BITS);
    } else if (!ignored) {
      let z = capped(logit(i));
      g = exp(z - mx) * inv_sum - select(0.0, 1.0, i32(v) == t);
      if (p.softcap > 0.0) {
        let r = z / p.softcap;
        g *= 1.0 - r * r;
      }
      g *= p.grad_scale;
    }
    buf[i] = SF(g);
  }
}
