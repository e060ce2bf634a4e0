// Shared by the cross-entropy kernels (kernels/cross_entropy_*.wgsl): the lowest logit, a
// run-time NaN and the workgroup merge of per-thread (max, sum) pairs. The including kernel
// declares THREADS (its workgroup size) and LANES (threads per row, a power of two; the rows
// of a workgroup are consecutive groups of LANES threads).

const LOWEST = -3.0e38;
var<workgroup> red_m: array<f32, THREADS>;
var<workgroup> red_s: array<f32, THREADS>;

// A quiet NaN, read at run time: WGSL makes a NaN from a constant expression an error
// (Chromium's Tint rejects `bitcast<f32>(0x7fc00000u)`; naga folded it).
var<private> NAN_BITS: u32 = 0x7fc00000u;

// Merges the running (max m, sum s = Σ exp(z − m)) of each thread of a row by a tree over its
// LANES threads; this thread is lane l of its row and li of the workgroup. Afterwards the row's
// max is red_m[li − l] and its sum red_s[li − l]. Every thread of the workgroup must call it (it
// holds barriers).
fn mergeMaxSum(li: u32, l: u32, m: f32, s: f32) {
  red_m[li] = m;
  red_s[li] = s;
  workgroupBarrier();
  for (var k = LANES / 2u; k > 0u; k >>= 1u) {
    if (l < k) {
      let m1 = red_m[li];
      let m2 = red_m[li + k];
      let mm = max(m1, m2);
      red_s[li] = red_s[li] * exp(m1 - mm) + red_s[li + k] * exp(m2 - mm);
      red_m[li] = mm;
    }
    workgroupBarrier();
  }
}
