// The row statistics of kernels/cross_entropy_losses.wgsl and cross_entropy_backward.wgsl (the
// kernels for V % 4 ≠ 0): one workgroup of WG threads per row of V logits, striding over the
// row with an online max / sum, then merged by a tree. The including kernel declares p (with
// V and softcap) and fn logit(i: u32) -> f32, element i of its logits buffer as f32.

const WG = 128u;
const THREADS = WG;
const LANES = WG;
#include "cross_entropy_common"

fn capped(x: f32) -> f32 {
  if (p.softcap > 0.0) {
    return p.softcap * tanh(clamp(x / p.softcap, -10.0, 10.0));
  }
  return x;
}

// (max z, Σ_v exp(z − max z)) of the row starting at `base`, z = capped(logit): the same in
// every thread. Every thread of the workgroup must call it (it holds barriers).
fn rowMaxSum(base: u32, li: u32) -> vec2<f32> {
  var m = LOWEST;
  var s = 0.0;
  for (var v = li; v < p.V; v += WG) {
    let z = capped(logit(base + v));
    if (z > m) {
      s = s * exp(m - z) + 1.0;
      m = z;
    } else {
      s += exp(z - m);
    }
  }
  mergeMaxSum(li, li, m, s);
  return vec2<f32>(red_m[0], red_s[0]);
}
