// Matrix product, vec4 fast path: C (M, N) = op(A) · op(B)  (C += … when accumulate).
//
// op(A) is (M, K): A is (M, K) row-major, or (K, M) when TRANS_A. op(B) is (K, N): B is (K, N)
// row-major, or (N, K) when TRANS_B. Every operand is read as vec4 along its contiguous axis,
// so this kernel needs K % 4 == 0, N % 4 == 0 and, when TRANS_A, M % 4 == 0 (lib/ops/matmul.ts
// picks kernels/matmul.wgsl otherwise).
//
// Each invocation computes a 16×16 register tile of C (64 vec4 accumulators) and walks K in
// steps of 4 with 32 vec4 loads per step: on lavapipe every storage-buffer load is a per-lane
// loop, so loads, not FMAs, bound the speed and a big tile is what makes this fast. No
// workgroup memory, no barriers. Rows/columns past the edge are clamped on load and skipped on
// store. The unrolled body is written out in full on purpose (WGSL has no unroll pragma and
// lavapipe keeps indexed local arrays in memory).
//
// Bindings:  @group(0) @binding(0) A : array<vec4<f32>>  (M·K / 4)
//            @group(0) @binding(1) B : array<vec4<f32>>  (K·N / 4)
//            @group(0) @binding(2) C : array<vec4<f32>>  (M·N / 4)  read_write
//            @group(1) @binding(0) p : Params { M, N, K, accumulate, lx }
//            (lx = invocations of a workgroup along N: 1, 2, 4 or 8; the other 8 / lx go along M)
// Overrides: TRANS_A, TRANS_B (bool).
// Dispatch:  (ceil(N / (16·lx)), ceil(M / (16·(8 / lx))), 1), workgroup size 8.

override TRANS_A: bool = false;
override TRANS_B: bool = false;

struct Params { M: u32, N: u32, K: u32, accumulate: u32, lx: u32 }

@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let m0 = (wg.y * (8u / p.lx) + li / p.lx) * 16u; // first row of this tile
  let n0 = (wg.x * p.lx + li % p.lx) * 16u; // first column of this tile
  let K4 = p.K / 4u;
  let M4 = p.M / 4u;
  let N4 = p.N / 4u;
  // Clamped load coordinates: rows (or row quads) and columns (or column quads).
  let ra0 = min(m0 + 0u, p.M - 1u) * K4;
  let ra1 = min(m0 + 1u, p.M - 1u) * K4;
  let ra2 = min(m0 + 2u, p.M - 1u) * K4;
  let ra3 = min(m0 + 3u, p.M - 1u) * K4;
  let ra4 = min(m0 + 4u, p.M - 1u) * K4;
  let ra5 = min(m0 + 5u, p.M - 1u) * K4;
  let ra6 = min(m0 + 6u, p.M - 1u) * K4;
  let ra7 = min(m0 + 7u, p.M - 1u) * K4;
  let ra8 = min(m0 + 8u, p.M - 1u) * K4;
  let ra9 = min(m0 + 9u, p.M - 1u) * K4;
  let ra10 = min(m0 + 10u, p.M - 1u) * K4;
  let ra11 = min(m0 + 11u, p.M - 1u) * K4;
  let ra12 = min(m0 + 12u, p.M - 1u) * K4;
  let ra13 = min(m0 + 13u, p.M - 1u) * K4;
  let ra14 = min(m0 + 14u, p.M - 1u) * K4;
  let ra15 = min(m0 + 15u, p.M - 1u) * K4;
  let qa0 = min(m0 / 4u + 0u, max(M4, 1u) - 1u);
  let qa1 = min(m0 / 4u + 1u, max(M4, 1u) - 1u);
  let qa2 = min(m0 / 4u + 2u, max(M4, 1u) - 1u);
  let qa3 = min(m0 / 4u + 3u, max(M4, 1u) - 1u);
  let qb0 = min(n0 / 4u + 0u, N4 - 1u);
  let qb1 = min(n0 / 4u + 1u, N4 - 1u);
  let qb2 = min(n0 / 4u + 2u, N4 - 1u);
  let qb3 = min(n0 / 4u + 3u, N4 - 1u);
  let rb0 = min(n0 + 0u, p.N - 1u) * K4;
  let rb1 = min(n0 + 1u, p.N - 1u) * K4;
  let rb2 = min(n0 + 2u, p.N - 1u) * K4;
  let rb3 = min(n0 + 3u, p.N - 1u) * K4;
  let rb4 = min(n0 + 4u, p.N - 1u) * K4;
  let rb5 = min(n0 + 5u, p.N - 1u) * K4;
  let rb6 = min(n0 + 6u, p.N - 1u) * K4;
  let rb7 = min(n0 + 7u, p.N - 1u) * K4;
  let rb8 = min(n0 + 8u, p.N - 1u) * K4;
  let rb9 = min(n0 + 9u, p.N - 1u) * K4;
  let rb10 = min(n0 + 10u, p.N - 1u) * K4;
  let rb11 = min(n0 + 11u, p.N - 1u) * K4;
  let rb12 = min(n0 + 12u, p.N - 1u) * K4;
  let rb13 = min(n0 + 13u, p.N - 1u) * K4;
  let rb14 = min(n0 + 14u, p.N - 1u) * K4;
  let rb15 = min(n0 + 15u, p.N - 1u) * K4;
  var c0_0 = vec4<f32>(); var c0_1 = vec4<f32>(); var c0_2 = vec4<f32>(); var c0_3 = vec4<f32>();
  var c1_0 = vec4<f32>(); var c1_1 = vec4<f32>(); var c1_2 = vec4<f32>(); var c1_3 = vec4<f32>();
  var c2_0 = vec4<f32>(); var c2_1 = vec4<f32>(); var c2_2 = vec4<f32>(); var c2_3 = vec4<f32>();
  var c3_0 = vec4<f32>(); var c3_1 = vec4<f32>(); var c3_2 = vec4<f32>(); var c3_3 = vec4<f32>();
  var c4_0 = vec4<f32>(); var c4_1 = vec4<f32>(); var c4_2 = vec4<f32>(); var c4_3 = vec4<f32>();
  var c5_0 = vec4<f32>(); var c5_1 = vec4<f32>(); var c5_2 = vec4<f32>(); var c5_3 = vec4<f32>();
  var c6_0 = vec4<f32>(); var c6_1 = vec4<f32>(); var c6_2 = vec4<f32>(); var c6_3 = vec4<f32>();
  var c7_0 = vec4<f32>(); var c7_1 = vec4<f32>(); var c7_2 = vec4<f32>(); var c7_3 = vec4<f32>();
  var c8_0 = vec4<f32>(); var c8_1 = vec4<f32>(); var c8_2 = vec4<f32>(); var c8_3 = vec4<f32>();
  var c9_0 = vec4<f32>(); var c9_1 = vec4<f32>(); var c9_2 = vec4<f32>(); var c9_3 = vec4<f32>();
  var c10_0 = vec4<f32>(); var c10_1 = vec4<f32>(); var c10_2 = vec4<f32>(); var c10_3 = vec4<f32>();
  var c11_0 = vec4<f32>(); var c11_1 = vec4<f32>(); var c11_2 = vec4<f32>(); var c11_3 = vec4<f32>();
  var c12_0 = vec4<f32>(); var c12_1 = vec4<f32>(); var c12_2 = vec4<f32>(); var c12_3 = vec4<f32>();
  var c13_0 = vec4<f32>(); var c13_1 = vec4<f32>(); var c13_2 = vec4<f32>(); var c13_3 = vec4<f32>();
  var c14_0 = vec4<f32>(); var c14_1 = vec4<f32>(); var c14_2 = vec4<f32>(); var c14_3 = vec4<f32>();
  var c15_0 = vec4<f32>(); var c15_1 = vec4<f32>(); var c15_2 = vec4<f32>(); var c15_3 = vec4<f32>();
  var a0: vec4<f32>; // A[m0 + 0, k..k+3]
  var a1: vec4<f32>; // A[m0 + 1, k..k+3]
  var a2: vec4<f32>; // A[m0 + 2, k..k+3]
  var a3: vec4<f32>; // A[m0 + 3, k..k+3]
  var a4: vec4<f32>; // A[m0 + 4, k..k+3]
  var a5: vec4<f32>; // A[m0 + 5, k..k+3]
  var a6: vec4<f32>; // A[m0 + 6, k..k+3]
  var a7: vec4<f32>; // A[m0 + 7, k..k+3]
  var a8: vec4<f32>; // A[m0 + 8, k..k+3]
  var a9: vec4<f32>; // A[m0 + 9, k..k+3]
  var a10: vec4<f32>; // A[m0 + 10, k..k+3]
  var a11: vec4<f32>; // A[m0 + 11, k..k+3]
  var a12: vec4<f32>; // A[m0 + 12, k..k+3]
  var a13: vec4<f32>; // A[m0 + 13, k..k+3]
  var a14: vec4<f32>; // A[m0 + 14, k..k+3]
  var a15: vec4<f32>; // A[m0 + 15, k..k+3]
  var b0_0: vec4<f32>; var b0_1: vec4<f32>; var b0_2: vec4<f32>; var b0_3: vec4<f32>; // B[k + 0, n0 + 4j..]
  var b1_0: vec4<f32>; var b1_1: vec4<f32>; var b1_2: vec4<f32>; var b1_3: vec4<f32>; // B[k + 1, n0 + 4j..]
  var b2_0: vec4<f32>; var b2_1: vec4<f32>; var b2_2: vec4<f32>; var b2_3: vec4<f32>; // B[k + 2, n0 + 4j..]
  var b3_0: vec4<f32>; var b3_1: vec4<f32>; var b3_2: vec4<f32>; var b3_3: vec4<f32>; // B[k + 3, n0 + 4j..]
  for (var k4 = 0u; k4 < K4; k4++) {
    if (TRANS_A) {
      let t0_0 = A[(k4 * 4u + 0u) * M4 + qa0];
      let t0_1 = A[(k4 * 4u + 0u) * M4 + qa1];
      let t0_2 = A[(k4 * 4u + 0u) * M4 + qa2];
      let t0_3 = A[(k4 * 4u + 0u) * M4 + qa3];
      let t1_0 = A[(k4 * 4u + 1u) * M4 + qa0];
      let t1_1 = A[(k4 * 4u + 1u) * M4 + qa1];
      let t1_2 = A[(k4 * 4u + 1u) * M4 + qa2];
      let t1_3 = A[(k4 * 4u + 1u) * M4 + qa3];
      let t2_0 = A[(k4 * 4u + 2u) * M4 + qa0];
      let t2_1 = A[(k4 * 4u + 2u) * M4 + qa1];
      let t2_2 = A[(k4 * 4u + 2u) * M4 + qa2];
      let t2_3 = A[(k4 * 4u + 2u) * M4 + qa3];
      let t3_0 = A[(k4 * 4u + 3u) * M4 + qa0];
      let t3_1 = A[(k4 * 4u + 3u) * M4 + qa1];
      let t3_2 = A[(k4 * 4u + 3u) * M4 + qa2];
      let t3_3 = A[(k4 * 4u + 3u) * M4 + qa3];
      a0 = vec4<f32>(t0_0.x, t1_0.x, t2_0.x, t3_0.x);
      a1 = vec4<f32>(t0_0.y, t1_0.y, t2_0.y, t3_0.y);
      a2 = vec4<f32>(t0_0.z, t1_0.z, t2_0.z, t3_0.z);
      a3 = vec4<f32>(t0_0.w, t1_0.w, t2_0.w, t3_0.w);
      a4 = vec4<f32>(t0_1.x, t1_1.x, t2_1.x, t3_1.x);
      a5 = vec4<f32>(t0_1.y, t1_1.y, t2_1.y, t3_1.y);
      a6 = vec4<f32>(t0_1.z, t1_1.z, t2_1.z, t3_1.z);
      a7 = vec4<f32>(t0_1.w, t1_1.w, t2_1.w, t3_1.w);
      a8 = vec4<f32>(t0_2.x, t1_2.x, t2_2.x, t3_2.x);
      a9 = vec4<f32>(t0_2.y, t1_2.y, t2_2.y, t3_2.y);
      a10 = vec4<f32>(t0_2.z, t1_2.z, t2_2.z, t3_2.z);
      a11 = vec4<f32>(t0_2.w, t1_2.w, t2_2.w, t3_2.w);
      a12 = vec4<f32>(t0_3.x, t1_3.x, t2_3.x, t3_3.x);
      a13 = vec4<f32>(t0_3.y, t1_3.y, t2_3.y, t3_3.y);
      a14 = vec4<f32>(t0_3.z, t1_3.z, t2_3.z, t3_3.z);
      a15 = vec4<f32>(t0_3.w, t1_3.w, t2_3.w, t3_3.w);
    } else {
      a0 = A[ra0 + k4];
      a1 = A[ra1 + k4];
      a2 = A[ra2 + k4];
      a3 = A[ra3 + k4];
      a4 = A[ra4 + k4];
      a5 = A[ra5 + k4];
      a6 = A[ra6 + k4];
      a7 = A[ra7 + k4];
      a8 = A[ra8 + k4];
      a9 = A[ra9 + k4];
      a10 = A[ra10 + k4];
      a11 = A[ra11 + k4];
      a12 = A[ra12 + k4];
      a13 = A[ra13 + k4];
      a14 = A[ra14 + k4];
      a15 = A[ra15 + k4];
    }
    if (TRANS_B) {
      let u0 = B[rb0 + k4];
      let u1 = B[rb1 + k4];
      let u2 = B[rb2 + k4];
      let u3 = B[rb3 + k4];
      let u4 = B[rb4 + k4];
      let u5 = B[rb5 + k4];
      let u6 = B[rb6 + k4];
      let u7 = B[rb7 + k4];
      let u8 = B[rb8 + k4];
      let u9 = B[rb9 + k4];
      let u10 = B[rb10 + k4];
      let u11 = B[rb11 + k4];
      let u12 = B[rb12 + k4];
      let u13 = B[rb13 + k4];
      let u14 = B[rb14 + k4];
      let u15 = B[rb15 + k4];
      b0_0 = vec4<f32>(u0.x, u1.x, u2.x, u3.x);
      b0_1 = vec4<f32>(u4.x, u5.x, u6.x, u7.x);
      b0_2 = vec4<f32>(u8.x, u9.x, u10.x, u11.x);
      b0_3 = vec4<f32>(u12.x, u13.x, u14.x, u15.x);
      b1_0 = vec4<f32>(u0.y, u1.y, u2.y, u3.y);
      b1_1 = vec4<f32>(u4.y, u5.y, u6.y, u7.y);
      b1_2 = vec4<f32>(u8.y, u9.y, u10.y, u11.y);
      b1_3 = vec4<f32>(u12.y, u13.y, u14.y, u15.y);
      b2_0 = vec4<f32>(u0.z, u1.z, u2.z, u3.z);
      b2_1 = vec4<f32>(u4.z, u5.z, u6.z, u7.z);
      b2_2 = vec4<f32>(u8.z, u9.z, u10.z, u11.z);
      b2_3 = vec4<f32>(u12.z, u13.z, u14.z, u15.z);
      b3_0 = vec4<f32>(u0.w, u1.w, u2.w, u3.w);
      b3_1 = vec4<f32>(u4.w, u5.w, u6.w, u7.w);
      b3_2 = vec4<f32>(u8.w, u9.w, u10.w, u11.w);
      b3_3 = vec4<f32>(u12.w, u13.w, u14.w, u15.w);
    } else {
      b0_0 = B[(k4 * 4u + 0u) * N4 + qb0];
      b0_1 = B[(k4 * 4u + 0u) * N4 + qb1];
      b0_2 = B[(k4 * 4u + 0u) * N4 + qb2];
      b0_3 = B[(k4 * 4u + 0u) * N4 + qb3];
      b1_0 = B[(k4 * 4u + 1u) * N4 + qb0];
      b1_1 = B[(k4 * 4u + 1u) * N4 + qb1];
      b1_2 = B[(k4 * 4u + 1u) * N4 + qb2];
      b1_3 = B[(k4 * 4u + 1u) * N4 + qb3];
      b2_0 = B[(k4 * 4u + 2u) * N4 + qb0];
      b2_1 = B[(k4 * 4u + 2u) * N4 + qb1];
      b2_2 = B[(k4 * 4u + 2u) * N4 + qb2];
      b2_3 = B[(k4 * 4u + 2u) * N4 + qb3];
      b3_0 = B[(k4 * 4u + 3u) * N4 + qb0];
      b3_1 = B[(k4 * 4u + 3u) * N4 + qb1];
      b3_2 = B[(k4 * 4u + 3u) * N4 + qb2];
      b3_3 = B[(k4 * 4u + 3u) * N4 + qb3];
    }
    c0_0 = fma(vec4<f32>(a0.x), b0_0, c0_0); c0_1 = fma(vec4<f32>(a0.x), b0_1, c0_1); c0_2 = fma(vec4<f32>(a0.x), b0_2, c0_2); c0_3 = fma(vec4<f32>(a0.x), b0_3, c0_3);
    c0_0 = fma(vec4<f32>(a0.y), b1_0, c0_0); c0_1 = fma(vec4<f32>(a0.y), b1_1, c0_1); c0_2 = fma(vec4<f32>(a0.y), b1_2, c0_2); c0_3 = fma(vec4<f32>(a0.y), b1_3, c0_3);
    c0_0 = fma(vec4<f32>(a0.z), b2_0, c0_0); c0_1 = fma(vec4<f32>(a0.z), b2_1, c0_1); c0_2 = fma(vec4<f32>(a0.z), b2_2, c0_2); c0_3 = fma(vec4<f32>(a0.z), b2_3, c0_3);
    c0_0 = fma(vec4<f32>(a0.w), b3_0, c0_0); c0_1 = fma(vec4<f32>(a0.w), b3_1, c0_1); c0_2 = fma(vec4<f32>(a0.w), b3_2, c0_2); c0_3 = fma(vec4<f32>(a0.w), b3_3, c0_3);
    c1_0 = fma(vec4<f32>(a1.x), b0_0, c1_0); c1_1 = fma(vec4<f32>(a1.x), b0_1, c1_1); c1_2 = fma(vec4<f32>(a1.x), b0_2, c1_2); c1_3 = fma(vec4<f32>(a1.x), b0_3, c1_3);
    c1_0 = fma(vec4<f32>(a1.y), b1_0, c1_0); c1_1 = fma(vec4<f32>(a1.y), b1_1, c1_1); c1_2 = fma(vec4<f32>(a1.y), b1_2, c1_2); c1_3 = fma(vec4<f32>(a1.y), b1_3, c1_3);
    c1_0 = fma(vec4<f32>(a1.z), b2_0, c1_0); c1_1 = fma(vec4<f32>(a1.z), b2_1, c1_1); c1_2 = fma(vec4<f32>(a1.z), b2_2, c1_2); c1_3 = fma(vec4<f32>(a1.z), b2_3, c1_3);
    c1_0 = fma(vec4<f32>(a1.w), b3_0, c1_0); c1_1 = fma(vec4<f32>(a1.w), b3_1, c1_1); c1_2 = fma(vec4<f32>(a1.w), b3_2, c1_2); c1_3 = fma(vec4<f32>(a1.w), b3_3, c1_3);
    c2_0 = fma(vec4<f32>(a2.x), b0_0, c2_0); c2_1 = fma(vec4<f32>(a2.x), b0_1, c2_1); c2_2 = fma(vec4<f32>(a2.x), b0_2, c2_2); c2_3 = fma(vec4<f32>(a2.x), b0_3, c2_3);
    c2_0 = fma(vec4<f32>(a2.y), b1_0, c2_0); c2_1 = fma(vec4<f32>(a2.y), b1_1, c2_1); c2_2 = fma(vec4<f32>(a2.y), b1_2, c2_2); c2_3 = fma(vec4<f32>(a2.y), b1_3, c2_3);
    c2_0 = fma(vec4<f32>(a2.z), b2_0, c2_0); c2_1 = fma(vec4<f32>(a2.z), b2_1, c2_1); c2_2 = fma(vec4<f32>(a2.z), b2_2, c2_2); c2_3 = fma(vec4<f32>(a2.z), b2_3, c2_3);
    c2_0 = fma(vec4<f32>(a2.w), b3_0, c2_0); c2_1 = fma(vec4<f32>(a2.w), b3_1, c2_1); c2_2 = fma(vec4<f32>(a2.w), b3_2, c2_2); c2_3 = fma(vec4<f32>(a2.w), b3_3, c2_3);
    c3_0 = fma(vec4<f32>(a3.x), b0_0, c3_0); c3_1 = fma(vec4<f32>(a3.x), b0_1, c3_1); c3_2 = fma(vec4<f32>(a3.x), b0_2, c3_2); c3_3 = fma(vec4<f32>(a3.x), b0_3, c3_3);
    c3_0 = fma(vec4<f32>(a3.y), b1_0, c3_0); c3_1 = fma(vec4<f32>(a3.y), b1_1, c3_1); c3_2 = fma(vec4<f32>(a3.y), b1_2, c3_2); c3_3 = fma(vec4<f32>(a3.y), b1_3, c3_3);
    c3_0 = fma(vec4<f32>(a3.z), b2_0, c3_0); c3_1 = fma(vec4<f32>(a3.z), b2_1, c3_1); c3_2 = fma(vec4<f32>(a3.z), b2_2, c3_2); c3_3 = fma(vec4<f32>(a3.z), b2_3, c3_3);
    c3_0 = fma(vec4<f32>(a3.w), b3_0, c3_0); c3_1 = fma(vec4<f32>(a3.w), b3_1, c3_1); c3_2 = fma(vec4<f32>(a3.w), b3_2, c3_2); c3_3 = fma(vec4<f32>(a3.w), b3_3, c3_3);
    c4_0 = fma(vec4<f32>(a4.x), b0_0, c4_0); c4_1 = fma(vec4<f32>(a4.x), b0_1, c4_1); c4_2 = fma(vec4<f32>(a4.x), b0_2, c4_2); c4_3 = fma(vec4<f32>(a4.x), b0_3, c4_3);
    c4_0 = fma(vec4<f32>(a4.y), b1_0, c4_0); c4_1 = fma(vec4<f32>(a4.y), b1_1, c4_1); c4_2 = fma(vec4<f32>(a4.y), b1_2, c4_2); c4_3 = fma(vec4<f32>(a4.y), b1_3, c4_3);
    c4_0 = fma(vec4<f32>(a4.z), b2_0, c4_0); c4_1 = fma(vec4<f32>(a4.z), b2_1, c4_1); c4_2 = fma(vec4<f32>(a4.z), b2_2, c4_2); c4_3 = fma(vec4<f32>(a4.z), b2_3, c4_3);
    c4_0 = fma(vec4<f32>(a4.w), b3_0, c4_0); c4_1 = fma(vec4<f32>(a4.w), b3_1, c4_1); c4_2 = fma(vec4<f32>(a4.w), b3_2, c4_2); c4_3 = fma(vec4<f32>(a4.w), b3_3, c4_3);
    c5_0 = fma(vec4<f32>(a5.x), b0_0, c5_0); c5_1 = fma(vec4<f32>(a5.x), b0_1, c5_1); c5_2 = fma(vec4<f32>(a5.x), b0_2, c5_2); c5_3 = fma(vec4<f32>(a5.x), b0_3, c5_3);
    c5_0 = fma(vec4<f32>(a5.y), b1_0, c5_0); c5_1 = fma(vec4<f32>(a5.y), b1_1, c5_1); c5_2 = fma(vec4<f32>(a5.y), b1_2, c5_2); c5_3 = fma(vec4<f32>(a5.y), b1_3, c5_3);
    c5_0 = fma(vec4<f32>(a5.z), b2_0, c5_0); c5_1 = fma(vec4<f32>(a5.z), b2_1, c5_1); c5_2 = fma(vec4<f32>(a5.z), b2_2, c5_2); c5_3 = fma(vec4<f32>(a5.z), b2_3, c5_3);
    c5_0 = fma(vec4<f32>(a5.w), b3_0, c5_0); c5_1 = fma(vec4<f32>(a5.w), b3_1, c5_1); c5_2 = fma(vec4<f32>(a5.w), b3_2, c5_2); c5_3 = fma(vec4<f32>(a5.w), b3_3, c5_3);
    c6_0 = fma(vec4<f32>(a6.x), b0_0, c6_0); c6_1 = fma(vec4<f32>(a6.x), b0_1, c6_1); c6_2 = fma(vec4<f32>(a6.x), b0_2, c6_2); c6_3 = fma(vec4<f32>(a6.x), b0_3, c6_3);
    c6_0 = fma(vec4<f32>(a6.y), b1_0, c6_0); c6_1 = fma(vec4<f32>(a6.y), b1_1, c6_1); c6_2 = fma(vec4<f32>(a6.y), b1_2, c6_2); c6_3 = fma(vec4<f32>(a6.y), b1_3, c6_3);
    c6_0 = fma(vec4<f32>(a6.z), b2_0, c6_0); c6_1 = fma(vec4<f32>(a6.z), b2_1, c6_1); c6_2 = fma(vec4<f32>(a6.z), b2_2, c6_2); c6_3 = fma(vec4<f32>(a6.z), b2_3, c6_3);
    c6_0 = fma(vec4<f32>(a6.w), b3_0, c6_0); c6_1 = fma(vec4<f32>(a6.w), b3_1, c6_1); c6_2 = fma(vec4<f32>(a6.w), b3_2, c6_2); c6_3 = fma(vec4<f32>(a6.w), b3_3, c6_3);
    c7_0 = fma(vec4<f32>(a7.x), b0_0, c7_0); c7_1 = fma(vec4<f32>(a7.x), b0_1, c7_1); c7_2 = fma(vec4<f32>(a7.x), b0_2, c7_2); c7_3 = fma(vec4<f32>(a7.x), b0_3, c7_3);
    c7_0 = fma(vec4<f32>(a7.y), b1_0, c7_0); c7_1 = fma(vec4<f32>(a7.y), b1_1, c7_1); c7_2 = fma(vec4<f32>(a7.y), b1_2, c7_2); c7_3 = fma(vec4<f32>(a7.y), b1_3, c7_3);
    c7_0 = fma(vec4<f32>(a7.z), b2_0, c7_0); c7_1 = fma(vec4<f32>(a7.z), b2_1, c7_1); c7_2 = fma(vec4<f32>(a7.z), b2_2, c7_2); c7_3 = fma(vec4<f32>(a7.z), b2_3, c7_3);
    c7_0 = fma(vec4<f32>(a7.w), b3_0, c7_0); c7_1 = fma(vec4<f32>(a7.w), b3_1, c7_1); c7_2 = fma(vec4<f32>(a7.w), b3_2, c7_2); c7_3 = fma(vec4<f32>(a7.w), b3_3, c7_3);
    c8_0 = fma(vec4<f32>(a8.x), b0_0, c8_0); c8_1 = fma(vec4<f32>(a8.x), b0_1, c8_1); c8_2 = fma(vec4<f32>(a8.x), b0_2, c8_2); c8_3 = fma(vec4<f32>(a8.x), b0_3, c8_3);
    c8_0 = fma(vec4<f32>(a8.y), b1_0, c8_0); c8_1 = fma(vec4<f32>(a8.y), b1_1, c8_1); c8_2 = fma(vec4<f32>(a8.y), b1_2, c8_2); c8_3 = fma(vec4<f32>(a8.y), b1_3, c8_3);
    c8_0 = fma(vec4<f32>(a8.z), b2_0, c8_0); c8_1 = fma(vec4<f32>(a8.z), b2_1, c8_1); c8_2 = fma(vec4<f32>(a8.z), b2_2, c8_2); c8_3 = fma(vec4<f32>(a8.z), b2_3, c8_3);
    c8_0 = fma(vec4<f32>(a8.w), b3_0, c8_0); c8_1 = fma(vec4<f32>(a8.w), b3_1, c8_1); c8_2 = fma(vec4<f32>(a8.w), b3_2, c8_2); c8_3 = fma(vec4<f32>(a8.w), b3_3, c8_3);
    c9_0 = fma(vec4<f32>(a9.x), b0_0, c9_0); c9_1 = fma(vec4<f32>(a9.x), b0_1, c9_1); c9_2 = fma(vec4<f32>(a9.x), b0_2, c9_2); c9_3 = fma(vec4<f32>(a9.x), b0_3, c9_3);
    c9_0 = fma(vec4<f32>(a9.y), b1_0, c9_0); c9_1 = fma(vec4<f32>(a9.y), b1_1, c9_1); c9_2 = fma(vec4<f32>(a9.y), b1_2, c9_2); c9_3 = fma(vec4<f32>(a9.y), b1_3, c9_3);
    c9_0 = fma(vec4<f32>(a9.z), b2_0, c9_0); c9_1 = fma(vec4<f32>(a9.z), b2_1, c9_1); c9_2 = fma(vec4<f32>(a9.z), b2_2, c9_2); c9_3 = fma(vec4<f32>(a9.z), b2_3, c9_3);
    c9_0 = fma(vec4<f32>(a9.w), b3_0, c9_0); c9_1 = fma(vec4<f32>(a9.w), b3_1, c9_1); c9_2 = fma(vec4<f32>(a9.w), b3_2, c9_2); c9_3 = fma(vec4<f32>(a9.w), b3_3, c9_3);
    c10_0 = fma(vec4<f32>(a10.x), b0_0, c10_0); c10_1 = fma(vec4<f32>(a10.x), b0_1, c10_1); c10_2 = fma(vec4<f32>(a10.x), b0_2, c10_2); c10_3 = fma(vec4<f32>(a10.x), b0_3, c10_3);
    c10_0 = fma(vec4<f32>(a10.y), b1_0, c10_0); c10_1 = fma(vec4<f32>(a10.y), b1_1, c10_1); c10_2 = fma(vec4<f32>(a10.y), b1_2, c10_2); c10_3 = fma(vec4<f32>(a10.y), b1_3, c10_3);
    c10_0 = fma(vec4<f32>(a10.z), b2_0, c10_0); c10_1 = fma(vec4<f32>(a10.z), b2_1, c10_1); c10_2 = fma(vec4<f32>(a10.z), b2_2, c10_2); c10_3 = fma(vec4<f32>(a10.z), b2_3, c10_3);
    c10_0 = fma(vec4<f32>(a10.w), b3_0, c10_0); c10_1 = fma(vec4<f32>(a10.w), b3_1, c10_1); c10_2 = fma(vec4<f32>(a10.w), b3_2, c10_2); c10_3 = fma(vec4<f32>(a10.w), b3_3, c10_3);
    c11_0 = fma(vec4<f32>(a11.x), b0_0, c11_0); c11_1 = fma(vec4<f32>(a11.x), b0_1, c11_1); c11_2 = fma(vec4<f32>(a11.x), b0_2, c11_2); c11_3 = fma(vec4<f32>(a11.x), b0_3, c11_3);
    c11_0 = fma(vec4<f32>(a11.y), b1_0, c11_0); c11_1 = fma(vec4<f32>(a11.y), b1_1, c11_1); c11_2 = fma(vec4<f32>(a11.y), b1_2, c11_2); c11_3 = fma(vec4<f32>(a11.y), b1_3, c11_3);
    c11_0 = fma(vec4<f32>(a11.z), b2_0, c11_0); c11_1 = fma(vec4<f32>(a11.z), b2_1, c11_1); c11_2 = fma(vec4<f32>(a11.z), b2_2, c11_2); c11_3 = fma(vec4<f32>(a11.z), b2_3, c11_3);
    c11_0 = fma(vec4<f32>(a11.w), b3_0, c11_0); c11_1 = fma(vec4<f32>(a11.w), b3_1, c11_1); c11_2 = fma(vec4<f32>(a11.w), b3_2, c11_2); c11_3 = fma(vec4<f32>(a11.w), b3_3, c11_3);
    c12_0 = fma(vec4<f32>(a12.x), b0_0, c12_0); c12_1 = fma(vec4<f32>(a12.x), b0_1, c12_1); c12_2 = fma(vec4<f32>(a12.x), b0_2, c12_2); c12_3 = fma(vec4<f32>(a12.x), b0_3, c12_3);
    c12_0 = fma(vec4<f32>(a12.y), b1_0, c12_0); c12_1 = fma(vec4<f32>(a12.y), b1_1, c12_1); c12_2 = fma(vec4<f32>(a12.y), b1_2, c12_2); c12_3 = fma(vec4<f32>(a12.y), b1_3, c12_3);
    c12_0 = fma(vec4<f32>(a12.z), b2_0, c12_0); c12_1 = fma(vec4<f32>(a12.z), b2_1, c12_1); c12_2 = fma(vec4<f32>(a12.z), b2_2, c12_2); c12_3 = fma(vec4<f32>(a12.z), b2_3, c12_3);
    c12_0 = fma(vec4<f32>(a12.w), b3_0, c12_0); c12_1 = fma(vec4<f32>(a12.w), b3_1, c12_1); c12_2 = fma(vec4<f32>(a12.w), b3_2, c12_2); c12_3 = fma(vec4<f32>(a12.w), b3_3, c12_3);
    c13_0 = fma(vec4<f32>(a13.x), b0_0, c13_0); c13_1 = fma(vec4<f32>(a13.x), b0_1, c13_1); c13_2 = fma(vec4<f32>(a13.x), b0_2, c13_2); c13_3 = fma(vec4<f32>(a13.x), b0_3, c13_3);
    c13_0 = fma(vec4<f32>(a13.y), b1_0, c13_0); c13_1 = fma(vec4<f32>(a13.y), b1_1, c13_1); c13_2 = fma(vec4<f32>(a13.y), b1_2, c13_2); c13_3 = fma(vec4<f32>(a13.y), b1_3, c13_3);
    c13_0 = fma(vec4<f32>(a13.z), b2_0, c13_0); c13_1 = fma(vec4<f32>(a13.z), b2_1, c13_1); c13_2 = fma(vec4<f32>(a13.z), b2_2, c13_2); c13_3 = fma(vec4<f32>(a13.z), b2_3, c13_3);
    c13_0 = fma(vec4<f32>(a13.w), b3_0, c13_0); c13_1 = fma(vec4<f32>(a13.w), b3_1, c13_1); c13_2 = fma(vec4<f32>(a13.w), b3_2, c13_2); c13_3 = fma(vec4<f32>(a13.w), b3_3, c13_3);
    c14_0 = fma(vec4<f32>(a14.x), b0_0, c14_0); c14_1 = fma(vec4<f32>(a14.x), b0_1, c14_1); c14_2 = fma(vec4<f32>(a14.x), b0_2, c14_2); c14_3 = fma(vec4<f32>(a14.x), b0_3, c14_3);
    c14_0 = fma(vec4<f32>(a14.y), b1_0, c14_0); c14_1 = fma(vec4<f32>(a14.y), b1_1, c14_1); c14_2 = fma(vec4<f32>(a14.y), b1_2, c14_2); c14_3 = fma(vec4<f32>(a14.y), b1_3, c14_3);
    c14_0 = fma(vec4<f32>(a14.z), b2_0, c14_0); c14_1 = fma(vec4<f32>(a14.z), b2_1, c14_1); c14_2 = fma(vec4<f32>(a14.z), b2_2, c14_2); c14_3 = fma(vec4<f32>(a14.z), b2_3, c14_3);
    c14_0 = fma(vec4<f32>(a14.w), b3_0, c14_0); c14_1 = fma(vec4<f32>(a14.w), b3_1, c14_1); c14_2 = fma(vec4<f32>(a14.w), b3_2, c14_2); c14_3 = fma(vec4<f32>(a14.w), b3_3, c14_3);
    c15_0 = fma(vec4<f32>(a15.x), b0_0, c15_0); c15_1 = fma(vec4<f32>(a15.x), b0_1, c15_1); c15_2 = fma(vec4<f32>(a15.x), b0_2, c15_2); c15_3 = fma(vec4<f32>(a15.x), b0_3, c15_3);
    c15_0 = fma(vec4<f32>(a15.y), b1_0, c15_0); c15_1 = fma(vec4<f32>(a15.y), b1_1, c15_1); c15_2 = fma(vec4<f32>(a15.y), b1_2, c15_2); c15_3 = fma(vec4<f32>(a15.y), b1_3, c15_3);
    c15_0 = fma(vec4<f32>(a15.z), b2_0, c15_0); c15_1 = fma(vec4<f32>(a15.z), b2_1, c15_1); c15_2 = fma(vec4<f32>(a15.z), b2_2, c15_2); c15_3 = fma(vec4<f32>(a15.z), b2_3, c15_3);
    c15_0 = fma(vec4<f32>(a15.w), b3_0, c15_0); c15_1 = fma(vec4<f32>(a15.w), b3_1, c15_1); c15_2 = fma(vec4<f32>(a15.w), b3_2, c15_2); c15_3 = fma(vec4<f32>(a15.w), b3_3, c15_3);
  }
  if (m0 + 0u < p.M) {
    let o = (m0 + 0u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c0_0);
    store(o + 1u, n0 + 4u, c0_1);
    store(o + 2u, n0 + 8u, c0_2);
    store(o + 3u, n0 + 12u, c0_3);
  }
  if (m0 + 1u < p.M) {
    let o = (m0 + 1u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c1_0);
    store(o + 1u, n0 + 4u, c1_1);
    store(o + 2u, n0 + 8u, c1_2);
    store(o + 3u, n0 + 12u, c1_3);
  }
  if (m0 + 2u < p.M) {
    let o = (m0 + 2u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c2_0);
    store(o + 1u, n0 + 4u, c2_1);
    store(o + 2u, n0 + 8u, c2_2);
    store(o + 3u, n0 + 12u, c2_3);
  }
  if (m0 + 3u < p.M) {
    let o = (m0 + 3u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c3_0);
    store(o + 1u, n0 + 4u, c3_1);
    store(o + 2u, n0 + 8u, c3_2);
    store(o + 3u, n0 + 12u, c3_3);
  }
  if (m0 + 4u < p.M) {
    let o = (m0 + 4u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c4_0);
    store(o + 1u, n0 + 4u, c4_1);
    store(o + 2u, n0 + 8u, c4_2);
    store(o + 3u, n0 + 12u, c4_3);
  }
  if (m0 + 5u < p.M) {
    let o = (m0 + 5u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c5_0);
    store(o + 1u, n0 + 4u, c5_1);
    store(o + 2u, n0 + 8u, c5_2);
    store(o + 3u, n0 + 12u, c5_3);
  }
  if (m0 + 6u < p.M) {
    let o = (m0 + 6u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c6_0);
    store(o + 1u, n0 + 4u, c6_1);
    store(o + 2u, n0 + 8u, c6_2);
    store(o + 3u, n0 + 12u, c6_3);
  }
  if (m0 + 7u < p.M) {
    let o = (m0 + 7u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c7_0);
    store(o + 1u, n0 + 4u, c7_1);
    store(o + 2u, n0 + 8u, c7_2);
    store(o + 3u, n0 + 12u, c7_3);
  }
  if (m0 + 8u < p.M) {
    let o = (m0 + 8u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c8_0);
    store(o + 1u, n0 + 4u, c8_1);
    store(o + 2u, n0 + 8u, c8_2);
    store(o + 3u, n0 + 12u, c8_3);
  }
  if (m0 + 9u < p.M) {
    let o = (m0 + 9u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c9_0);
    store(o + 1u, n0 + 4u, c9_1);
    store(o + 2u, n0 + 8u, c9_2);
    store(o + 3u, n0 + 12u, c9_3);
  }
  if (m0 + 10u < p.M) {
    let o = (m0 + 10u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c10_0);
    store(o + 1u, n0 + 4u, c10_1);
    store(o + 2u, n0 + 8u, c10_2);
    store(o + 3u, n0 + 12u, c10_3);
  }
  if (m0 + 11u < p.M) {
    let o = (m0 + 11u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c11_0);
    store(o + 1u, n0 + 4u, c11_1);
    store(o + 2u, n0 + 8u, c11_2);
    store(o + 3u, n0 + 12u, c11_3);
  }
  if (m0 + 12u < p.M) {
    let o = (m0 + 12u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c12_0);
    store(o + 1u, n0 + 4u, c12_1);
    store(o + 2u, n0 + 8u, c12_2);
    store(o + 3u, n0 + 12u, c12_3);
  }
  if (m0 + 13u < p.M) {
    let o = (m0 + 13u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c13_0);
    store(o + 1u, n0 + 4u, c13_1);
    store(o + 2u, n0 + 8u, c13_2);
    store(o + 3u, n0 + 12u, c13_3);
  }
  if (m0 + 14u < p.M) {
    let o = (m0 + 14u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c14_0);
    store(o + 1u, n0 + 4u, c14_1);
    store(o + 2u, n0 + 8u, c14_2);
    store(o + 3u, n0 + 12u, c14_3);
  }
  if (m0 + 15u < p.M) {
    let o = (m0 + 15u) * N4 + n0 / 4u;
    store(o + 0u, n0 + 0u, c15_0);
    store(o + 1u, n0 + 4u, c15_1);
    store(o + 2u, n0 + 8u, c15_2);
    store(o + 3u, n0 + 12u, c15_3);
  }
}

// C[o] = v, or C[o] += v when accumulating; skipped past the last column.
fn store(o: u32, n: u32, v: vec4<f32>) {
  if (n < p.N) {
    if (p.accumulate != 0u) {
      C[o] = C[o] + v;
    } else {
      C[o] = v;
    }
  }
}
