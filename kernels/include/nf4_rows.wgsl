// The row blocking of kernels/nf4_matmul*.wgsl: each invocation computes rows s0 .. s0 + 7 of
// its output columns (rows past S are clamped on load and skipped on store). The including
// kernel declares p (with S and accumulate) and its output `out : array<SF>` (read_write).

// The offsets of rows s0 .. s0 + 7 in a matrix of `stride` columns, rows past S clamped to the
// last.
fn rowOffsets(s0: u32, stride: u32) -> array<u32, 8> {
  var r: array<u32, 8>;
  for (var j = 0u; j < 8u; j++) {
    r[j] = min(s0 + j, p.S - 1u) * stride;
  }
  return r;
}

// Writes v to out[o], or adds it when p.accumulate is set.
fn put(o: u32, v: f32) {
  if (p.accumulate != 0u) {
    out[o] = SF(f32(out[o]) + v);
  } else {
    out[o] = SF(v);
  }
}

// Writes column `col` of rows s0 .. s0 + 7 (those below S) of an output of `stride` columns:
// acc0 holds rows 0–3, acc1 rows 4–7.
fn putColumn(s0: u32, col: u32, stride: u32, acc0: vec4<f32>, acc1: vec4<f32>) {
  for (var j = 0u; j < 8u; j++) {
    let s = s0 + j;
    if (s < p.S) {
      var v = acc0[j & 3u];
      if (j >= 4u) {
        v = acc1[j & 3u];
      }
      put(s * stride + col, v);
    }
  }
}
