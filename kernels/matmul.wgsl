// Matrix product, any shape: C (M, N) = op(A) · op(B)  (C += … when accumulate).
//
// op(A) is (M, K): A is (M, K) row-major, or (K, M) when TRANS_A. op(B) is (K, N): B is (K, N)
// row-major, or (N, K) when TRANS_B. Scalar loads, so no alignment is needed; the vec4 kernel
// (kernels/matmul_vec4.wgsl) is used instead whenever the shapes allow.
//
// Each invocation computes an 8×8 register tile of C (16 vec4 accumulators) with 16 scalar
// loads per step of K. Rows/columns past the edge are clamped on load and skipped on store.
//
// Bindings:  @group(0) @binding(0) A : array<f32>  (M·K)
//            @group(0) @binding(1) B : array<f32>  (K·N)
//            @group(0) @binding(2) C : array<f32>  (M·N)  read_write
//            @group(1) @binding(0) p : Params { M, N, K, accumulate, lx, sam, sak, sbk, sbn }
//            (lx = invocations of a workgroup along N: 1, 2, 4 or 8; the other 8 / lx go along M.
//            sam, sak = element strides of op(A) along m and k; sbk, sbn = of op(B) along k and
//            n: transposes are strides, so one pipeline serves all four layouts)
// Dispatch:  (ceil(N / (8·lx)), ceil(M / (8·(8 / lx))), 1), workgroup size 8.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params {
  M: u32, N: u32, K: u32, accumulate: u32, lx: u32, sam: u32, sak: u32, sbk: u32, sbn: u32,
}

@group(0) @binding(0) var<storage, read> A: array<SF>;
@group(0) @binding(1) var<storage, read> B: array<SF>;
@group(0) @binding(2) var<storage, read_write> C: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let m0 = (wg.y * (8u / p.lx) + li / p.lx) * 8u; // first row of this tile
  let n0 = (wg.x * p.lx + li % p.lx) * 8u; // first column of this tile

  let ra0 = min(m0 + 0u, p.M - 1u) * p.sam;
  let ra1 = min(m0 + 1u, p.M - 1u) * p.sam;
  let ra2 = min(m0 + 2u, p.M - 1u) * p.sam;
  let ra3 = min(m0 + 3u, p.M - 1u) * p.sam;
  let ra4 = min(m0 + 4u, p.M - 1u) * p.sam;
  let ra5 = min(m0 + 5u, p.M - 1u) * p.sam;
  let ra6 = min(m0 + 6u, p.M - 1u) * p.sam;
  let ra7 = min(m0 + 7u, p.M - 1u) * p.sam;
  let rb0 = min(n0 + 0u, p.N - 1u) * p.sbn;
  let rb1 = min(n0 + 1u, p.N - 1u) * p.sbn;
  let rb2 = min(n0 + 2u, p.N - 1u) * p.sbn;
  let rb3 = min(n0 + 3u, p.N - 1u) * p.sbn;
  let rb4 = min(n0 + 4u, p.N - 1u) * p.sbn;
  let rb5 = min(n0 + 5u, p.N - 1u) * p.sbn;
  let rb6 = min(n0 + 6u, p.N - 1u) * p.sbn;
  let rb7 = min(n0 + 7u, p.N - 1u) * p.sbn;
  var c0_0 = vec4<f32>(); var c0_1 = vec4<f32>();
  var c1_0 = vec4<f32>(); var c1_1 = vec4<f32>();
  var c2_0 = vec4<f32>(); var c2_1 = vec4<f32>();
  var c3_0 = vec4<f32>(); var c3_1 = vec4<f32>();
  var c4_0 = vec4<f32>(); var c4_1 = vec4<f32>();
  var c5_0 = vec4<f32>(); var c5_1 = vec4<f32>();
  var c6_0 = vec4<f32>(); var c6_1 = vec4<f32>();
  var c7_0 = vec4<f32>(); var c7_1 = vec4<f32>();
  for (var k = 0u; k < p.K; k++) {
    let ka = k * p.sak;
    let kb = k * p.sbk;
    let b0 = vec4<f32>(f32(B[kb + rb0]), f32(B[kb + rb1]), f32(B[kb + rb2]), f32(B[kb + rb3]));
    let b1 = vec4<f32>(f32(B[kb + rb4]), f32(B[kb + rb5]), f32(B[kb + rb6]), f32(B[kb + rb7]));
    let a0 = vec4<f32>(f32(A[ra0 + ka]));
    c0_0 = fma(a0, b0, c0_0); c0_1 = fma(a0, b1, c0_1);
    let a1 = vec4<f32>(f32(A[ra1 + ka]));
    c1_0 = fma(a1, b0, c1_0); c1_1 = fma(a1, b1, c1_1);
    let a2 = vec4<f32>(f32(A[ra2 + ka]));
    c2_0 = fma(a2, b0, c2_0); c2_1 = fma(a2, b1, c2_1);
    let a3 = vec4<f32>(f32(A[ra3 + ka]));
    c3_0 = fma(a3, b0, c3_0); c3_1 = fma(a3, b1, c3_1);
    let a4 = vec4<f32>(f32(A[ra4 + ka]));
    c4_0 = fma(a4, b0, c4_0); c4_1 = fma(a4, b1, c4_1);
    let a5 = vec4<f32>(f32(A[ra5 + ka]));
    c5_0 = fma(a5, b0, c5_0); c5_1 = fma(a5, b1, c5_1);
    let a6 = vec4<f32>(f32(A[ra6 + ka]));
    c6_0 = fma(a6, b0, c6_0); c6_1 = fma(a6, b1, c6_1);
    let a7 = vec4<f32>(f32(A[ra7 + ka]));
    c7_0 = fma(a7, b0, c7_0); c7_1 = fma(a7, b1, c7_1);
  }
  if (m0 + 0u < p.M) {
    let o = (m0 + 0u) * p.N;
    store4(o, n0, c0_0);
    store4(o, n0 + 4u, c0_1);
  }
  if (m0 + 1u < p.M) {
    let o = (m0 + 1u) * p.N;
    store4(o, n0, c1_0);
    store4(o, n0 + 4u, c1_1);
  }
  if (m0 + 2u < p.M) {
    let o = (m0 + 2u) * p.N;
    store4(o, n0, c2_0);
    store4(o, n0 + 4u, c2_1);
  }
  if (m0 + 3u < p.M) {
    let o = (m0 + 3u) * p.N;
    store4(o, n0, c3_0);
    store4(o, n0 + 4u, c3_1);
  }
  if (m0 + 4u < p.M) {
    let o = (m0 + 4u) * p.N;
    store4(o, n0, c4_0);
    store4(o, n0 + 4u, c4_1);
  }
  if (m0 + 5u < p.M) {
    let o = (m0 + 5u) * p.N;
    store4(o, n0, c5_0);
    store4(o, n0 + 4u, c5_1);
  }
  if (m0 + 6u < p.M) {
    let o = (m0 + 6u) * p.N;
    store4(o, n0, c6_0);
    store4(o, n0 + 4u, c6_1);
  }
  if (m0 + 7u < p.M) {
    let o = (m0 + 7u) * p.N;
    store4(o, n0, c7_0);
    store4(o, n0 + 4u, c7_1);
  }
}

// Stores the columns n..n+3 of one row (starting at element o), skipping those past N.
fn store4(o: u32, n: u32, v: vec4<f32>) {
  for (var c = 0u; c < 4u; c++) {
    if (n + c < p.N) {
      let i = o + n + c;
      if (p.accumulate != 0u) {
        C[i] = SF(f32(C[i]) + v[c]);
      } else {
        C[i] = SF(v[c]);
      }
    }
  }
}
