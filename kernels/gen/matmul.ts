/**
 * Generator of the unrolled vec4 matmul kernels (`kernels/matmul_vec4*.wgsl`).
 *
 * `matmul_vec4` reads A and B from storage buffers, `matmul_vec4_tex` from textures staged by
 * `Device.texture` (lib/ops/matmul.ts picks). WGSL has no unroll pragma and lavapipe keeps indexed local arrays in memory, so the
 * register-tiled kernels are written out in full; this file is their single source.
 * `deno run -A kernels/gen/matmul.ts` rewrites the committed kernels; `--check` only
 * compares (tests/matmul_test.ts runs the same comparison).
 */

/** Shape of one generated kernel. */
export interface Vec4Config {
  /** Kernel name (file `kernels/<name>.wgsl`). */
  name: string;
  /** Rows of C per invocation (multiple of 4). */
  tm: number;
  /** Columns of C per invocation (multiple of 4). */
  tn: number;
  /**
   * Invocations of a workgroup along N (the other `8 / lx` go along M); 0 = chosen per dispatch
   * through the `lx` parameter (1, 2, 4 or 8).
   */
  lx: number;
  /**
   * Read A and B from staged textures (`Device.texture`, `@group(2)`) instead of storage
   * buffers: on lavapipe a `textureLoad` costs a fraction of a storage load.
   */
  tex?: boolean;
  /**
   * Epilogue instead of storing C (tex kernels only). `"glu_backward"`: C is dh, the gradient
   * of a gated unit's output h = act(gate)·up; the store reads gate and up at the same
   * positions and writes dGate = dh·up·act'(gate) and dUp = dh·act(gate) (act: SiLU or
   * tanh-GELU, override ACT), so dh never exists and no separate pass runs.
   * `"glu_forward"` / `"glu_forward_h"`: the up-projection of a gated unit: two weights
   * Wg, Wu (N, K) are staged (B_tex, B2_tex; TRANS_B only) and the tile's first tn / 2 columns
   * accumulate gate = A·Wgᵀ, its last tn / 2 up = A·Wuᵀ over the same N columns; the store
   * writes h = act(gate)·up and, in `glu_forward`, gate and up too (for the backward), so one
   * pass replaces two matmuls and the GLU kernel. `glu_forward_h` stores h only.
   * `"sum2"`: C = A·B + A2·B2 (no transposes, same M, N, K; A2_tex, B2_tex): two products
   * into one output in one pass (e.g. dx = dGate·Wg + dUp·Wu).
   * `"pair_rows"`: C = Aᵀ·B and C2 = A2ᵀ·B (TRANS_A only, B not transposed, same shapes;
   * A2_tex, binding 1 C2): the tile's first tm / 2 rows are C's, the last C2's, so one pass
   * over B serves both (e.g. the weight gradients dWg += dGateᵀ·x, dWu += dUpᵀ·x).
   * `"pair_cols"`: C = A·Bᵀ and C2 = A·B2ᵀ (TRANS_B only, B, B2 (N, K); binding 1 C2, B2_tex):
   * the column split of `glu_forward` storing both products (e.g. k and v of one input).
   */
  epilogue?: "glu_backward" | "glu_forward" | "glu_forward_h" | "sum2" | "pair_rows" | "pair_cols";
}

/** Register tile (rows × columns of C per invocation) of the texture kernel. */
export const TEX_TM = 16;
/** See {@link TEX_TM}. */
export const TEX_TN = 16;

/** The kernels committed under kernels/. */
export const VEC4_KERNELS: Vec4Config[] = [
  { name: "matmul_vec4", tm: 16, tn: 16, lx: 0 },
  { name: "matmul_vec4_tex", tm: TEX_TM, tn: TEX_TN, lx: 0, tex: true },
  {
    name: "matmul_vec4_tex_glu_forward",
    tm: TEX_TM,
    tn: TEX_TN,
    lx: 0,
    tex: true,
    epilogue: "glu_forward",
  },
  {
    name: "matmul_vec4_tex_glu_forward_h",
    tm: TEX_TM,
    tn: TEX_TN,
    lx: 0,
    tex: true,
    epilogue: "glu_forward_h",
  },
  {
    name: "matmul_vec4_tex_pair_cols",
    tm: TEX_TM,
    tn: TEX_TN,
    lx: 0,
    tex: true,
    epilogue: "pair_cols",
  },
  { name: "matmul_vec4_tex_sum2", tm: TEX_TM, tn: TEX_TN, lx: 0, tex: true, epilogue: "sum2" },
  {
    name: "matmul_vec4_tex_pair_rows",
    tm: TEX_TM,
    tn: TEX_TN,
    lx: 0,
    tex: true,
    epilogue: "pair_rows",
  },
  {
    name: "matmul_vec4_tex_glu_backward",
    tm: TEX_TM,
    tn: TEX_TN,
    lx: 0,
    tex: true,
    epilogue: "glu_backward",
  },
];

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const XYZW = ["x", "y", "z", "w"];

/** WGSL source of one register-tiled vec4 kernel. */
export function matmulVec4Source(cfg: Vec4Config): string {
  const { tm, tn, lx } = cfg;
  const tex = cfg.tex ?? false;
  const glu = cfg.epilogue === "glu_backward";
  const fwd = cfg.epilogue === "glu_forward" || cfg.epilogue === "glu_forward_h";
  const keepGU = cfg.epilogue === "glu_forward"; // also store gate and up
  const sum2 = cfg.epilogue === "sum2";
  const pair = cfg.epilogue === "pair_rows";
  const cols = cfg.epilogue === "pair_cols";
  const split = fwd || cols; // B is two weights, the tile's columns split between them
  if ((glu || split || sum2 || pair) && !tex) {
    throw new Error(`${cfg.name}: the ${cfg.epilogue} epilogue needs tex: true`);
  }
  const A = (i: string) => tex ? `ldA(${i})` : `vec4<f32>(A[${i}])`;
  const B = (i: string) => tex ? `ldB(${i})` : `vec4<f32>(B[${i}])`;
  if (![0, 1, 2, 4, 8].includes(lx)) throw new Error(`lx = ${lx}: need 0, 1, 2, 4 or 8`);
  const LX = lx === 0 ? "p.lx" : `${lx}u`;
  const LY = lx === 0 ? "(8u / p.lx)" : `${8 / lx}u`;
  if (tm % 4 !== 0 || tn % 4 !== 0) throw new Error(`tile ${tm}×${tn}: need multiples of 4`);
  const qn = tn / 4; // vec4 columns per invocation
  const wn = split ? tn / 2 : tn; // output columns per invocation (half from each weight)
  const wm = pair ? tm / 2 : tm; // output rows per invocation (half C, half C2 when pair)
  const qm = tm / 4;
  const L: string[] = [];
  const e = (s: string) => L.push(s);
  e(`// GENERATED by kernels/gen/matmul.ts (${
    JSON.stringify(cfg)
  }): edit the generator, not this.`);
  e(`//`);
  e(`// Matrix product, vec4 fast path: C (M, N) = op(A) · op(B)  (C += … when accumulate).`);
  e(`//`);
  e(`// op(A) is (M, K): A is (M, K) row-major, or (K, M) when TRANS_A. op(B) is (K, N): B is (K, N)`);
  e(`// row-major, or (N, K) when TRANS_B. Every operand is read as vec4 along its contiguous axis,`);
  e(`// so this kernel needs K % 4 == 0, N % 4 == 0 and, when TRANS_A, M % 4 == 0 (lib/ops/matmul.ts`);
  e(`// picks kernels/matmul.wgsl otherwise).`);
  e(`//`);
  e(`// Each invocation computes a ${tm}×${tn} register tile of C and walks K in steps of 4 with`);
  if (tex) {
    e(`// ${tm + tn} vec4 loads per step, as textureLoads from A and B staged by Device.texture`);
    e(`// (lib/device/texture.ts: texel i at (i & 1023, i >> 10)); on lavapipe a textureLoad costs`);
    e(`// a fraction of a storage load (a per-lane loop with bounds checks), so the tile is sized`);
    e(`// for compile time and registers rather than for FMAs per load.`);
  } else {
    e(`// ${
      tm + tn
    } vec4 loads per step: on lavapipe every storage (and workgroup) load is a loop over`);
    e(`// the 8 lanes costing ~10 FMAs per component, so FMAs per load (tile size) set the speed.`);
  }
  e(`// Rows/columns past the edge are clamped on load and skipped on store. Storage is SF (f32, or`);
  e(`// f16 in the half variant: loads widen, stores narrow; accumulation is f32).`);
  e(`//`);
  if (sum2) {
    e(`// Two products (sum2): C = A·B + A2·B2 (C += … when accumulate), A, A2 (M, K), B, B2`);
    e(`// (K, N); TRANS_A and TRANS_B must not be set.`);
    e(`//`);
    e(`// Bindings:  @group(0) @binding(0) C : array<vec4<SF>>   (M·N / 4)  read_write`);
    e(`//            @group(1) @binding(0) p : Params { M, N, K, accumulate, lx }`);
    e(`//            @group(2) @binding(0) A_tex  : texture_2d<f32>  (M·K / 4 texels)`);
    e(`//            @group(2) @binding(1) B_tex  : texture_2d<f32>  (K·N / 4 texels)`);
    e(`//            @group(2) @binding(2) A2_tex : texture_2d<f32>  (M·K / 4 texels)`);
    e(`//            @group(2) @binding(3) B2_tex : texture_2d<f32>  (K·N / 4 texels)`);
  } else if (pair) {
    e(`// Row pair (pair_rows): C = Aᵀ·B and C2 = A2ᵀ·B (+= when accumulate), A, A2 stored (K, M),`);
    e(`// B (K, N); TRANS_A must be set, TRANS_B not. The tile's rows 0..${wm - 1} are C's rows`);
    e(`// m0.., its rows ${wm}..${tm - 1} C2's same rows.`);
    e(`//`);
    e(`// Bindings:  @group(0) @binding(0) C  : array<vec4<SF>>   (M·N / 4)  read_write`);
    e(`//            @group(0) @binding(1) C2 : array<vec4<SF>>   (M·N / 4)  read_write`);
    e(`//            @group(1) @binding(0) p : Params { M, N, K, accumulate, lx }`);
    e(`//            @group(2) @binding(0) A_tex  : texture_2d<f32>  (K·M / 4 texels)`);
    e(`//            @group(2) @binding(1) B_tex  : texture_2d<f32>  (K·N / 4 texels)`);
    e(`//            @group(2) @binding(2) A2_tex : texture_2d<f32>  (K·M / 4 texels)`);
  } else if (cols) {
    e(`// Column pair (pair_cols): C = A·Bᵀ and C2 = A·B2ᵀ, B, B2 (N, K) (TRANS_B must be set,`);
    e(`// TRANS_A not, accumulate 0); the tile's columns 0..${wn - 1} accumulate C, ${wn}..${
      tn - 1
    } C2`);
    e(`// over the same ${wn} output columns.`);
    e(`//`);
    e(`// Bindings:  @group(0) @binding(0) C  : array<vec4<SF>>   (M·N / 4)  written`);
    e(`//            @group(0) @binding(1) C2 : array<vec4<SF>>   (M·N / 4)  written`);
    e(`//            @group(1) @binding(0) p : Params { M, N, K, accumulate, lx }`);
    e(`//            @group(2) @binding(0) A_tex  : texture_2d<f32>  (M·K / 4 texels)`);
    e(`//            @group(2) @binding(1) B_tex  : texture_2d<f32>  (N·K / 4 texels)`);
    e(`//            @group(2) @binding(2) B2_tex : texture_2d<f32>  (N·K / 4 texels)`);
  } else if (fwd) {
    e(`// Epilogue (${cfg.epilogue}): B is two weights Wg, Wu, each (N, K) (TRANS_B must be set;`);
    e(`// TRANS_A must not); the tile's columns 0..${wn - 1} accumulate g = A·Wgᵀ and ${wn}..${
      tn - 1
    } u = A·Wuᵀ over`);
    e(`// the same ${wn} output columns. Stored: h = act(g)·u (ACT 0: SiLU, 1: tanh-GELU, as`);
    e(`// kernels/glu_forward.wgsl, from g and u rounded to SF as stored)${
      keepGU ? " and g, u" : " only"
    }. accumulate must be 0.`);
    e(`//`);
    let b = 0;
    if (keepGU) {
      e(`// Bindings:  @group(0) @binding(0) gate : array<vec4<SF>>   (M·N / 4)  written`);
      e(`//            @group(0) @binding(1) up   : array<vec4<SF>>   (M·N / 4)  written`);
      b = 2;
    }
    e(`// ${
      b === 0 ? "Bindings:  " : "           "
    }@group(0) @binding(${b}) h    : array<vec4<SF>>   (M·N / 4)  written`);
    e(`//            @group(1) @binding(0) p : Params { M, N, K, accumulate, lx }`);
    e(`//            @group(2) @binding(0) A_tex  : texture_2d<f32>  (M·K / 4 texels)`);
    e(`//            @group(2) @binding(1) B_tex  : texture_2d<f32>  (Wg: N·K / 4 texels)`);
    e(`//            @group(2) @binding(2) B2_tex : texture_2d<f32>  (Wu: N·K / 4 texels)`);
  } else if (glu) {
    e(`// Epilogue (glu_backward): C = dh is never stored; with g = gate, u = up at the same`);
    e(`// (m, n): dGate = dh·u·act'(g), dUp = dh·act(g) (ACT 0: SiLU, 1: tanh-GELU, as`);
    e(`// kernels/glu_backward.wgsl). accumulate must be 0.`);
    e(`//`);
    e(`// Bindings:  @group(0) @binding(0) gate  : array<vec4<SF>>   (M·N / 4)`);
    e(`//            @group(0) @binding(1) up    : array<vec4<SF>>   (M·N / 4)`);
    e(`//            @group(0) @binding(2) dgate : array<vec4<SF>>   (M·N / 4)  written`);
    e(`//            @group(0) @binding(3) dup   : array<vec4<SF>>   (M·N / 4)  written`);
    e(`//            @group(1) @binding(0) p : Params { M, N, K, accumulate, lx }`);
    e(`//            @group(2) @binding(0) A_tex : texture_2d<f32>  (M·K / 4 texels)`);
    e(`//            @group(2) @binding(1) B_tex : texture_2d<f32>  (K·N / 4 texels)`);
  } else if (tex) {
    e(`// Bindings:  @group(0) @binding(0) C : array<vec4<SF>>   (M·N / 4)  read_write`);
    e(`//            @group(1) @binding(0) p : Params { M, N, K, accumulate, lx }`);
    e(`//            @group(2) @binding(0) A_tex : texture_2d<f32>  (M·K / 4 texels)`);
    e(`//            @group(2) @binding(1) B_tex : texture_2d<f32>  (K·N / 4 texels)`);
  } else {
    e(`// Bindings:  @group(0) @binding(0) A : array<vec4<SF>>   (M·K / 4)`);
    e(`//            @group(0) @binding(1) B : array<vec4<SF>>   (K·N / 4)`);
    e(`//            @group(0) @binding(2) C : array<vec4<SF>>   (M·N / 4)  read_write`);
    e(`//            @group(1) @binding(0) p : Params { M, N, K, accumulate, lx }`);
  }
  e(`//            (lx = invocations of a workgroup along N: ${
    lx === 0 ? "1, 2, 4 or 8" : `must be ${lx}`
  }; the other 8 / lx go along M)`);
  e(`// Overrides: TRANS_A, TRANS_B (bool)${glu || fwd ? ", ACT (u32)" : ""}.`);
  e(`// Dispatch:  (ceil(N / (${wn}·lx)), ceil(M / (${wm}·(8 / lx))), 1), workgroup size 8.`);
  e(``);
  e(`alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)`);
  e(`override TRANS_A: bool = false;`);
  e(`override TRANS_B: bool = false;`);
  if (glu || fwd) e(`override ACT: u32 = 0u;`);
  e(``);
  e(`struct Params { M: u32, N: u32, K: u32, accumulate: u32, lx: u32 }`);
  e(``);
  if (tex) {
    if (fwd) {
      let b = 0;
      if (keepGU) {
        e(`@group(0) @binding(0) var<storage, read_write> gate: array<vec4<SF>>;`);
        e(`@group(0) @binding(1) var<storage, read_write> up: array<vec4<SF>>;`);
        b = 2;
      }
      e(`@group(0) @binding(${b}) var<storage, read_write> h: array<vec4<SF>>;`);
    } else if (pair || cols) {
      e(`@group(0) @binding(0) var<storage, read_write> C: array<vec4<SF>>;`);
      e(`@group(0) @binding(1) var<storage, read_write> C2: array<vec4<SF>>;`);
    } else if (glu) {
      e(`@group(0) @binding(0) var<storage, read> gate: array<vec4<SF>>;`);
      e(`@group(0) @binding(1) var<storage, read> up: array<vec4<SF>>;`);
      e(`@group(0) @binding(2) var<storage, read_write> dgate: array<vec4<SF>>;`);
      e(`@group(0) @binding(3) var<storage, read_write> dup: array<vec4<SF>>;`);
    } else {
      e(`@group(0) @binding(0) var<storage, read_write> C: array<vec4<SF>>;`);
    }
    e(`@group(1) @binding(0) var<uniform> p: Params;`);
    e(`@group(2) @binding(0) var A_tex: texture_2d<f32>;`);
    e(`@group(2) @binding(1) var B_tex: texture_2d<f32>;`);
    if (split) e(`@group(2) @binding(2) var B2_tex: texture_2d<f32>;`);
    if (sum2 || pair) e(`@group(2) @binding(2) var A2_tex: texture_2d<f32>;`);
    if (sum2) e(`@group(2) @binding(3) var B2_tex: texture_2d<f32>;`);
    e(``);
    e(`fn ldA(i: u32) -> vec4<f32> {`);
    e(`  return textureLoad(A_tex, vec2<u32>(i & 1023u, i >> 10u), 0);`);
    e(`}`);
    e(``);
    e(`fn ldB(i: u32) -> vec4<f32> {`);
    e(`  return textureLoad(B_tex, vec2<u32>(i & 1023u, i >> 10u), 0);`);
    e(`}`);
    if (sum2 || pair) {
      e(``);
      e(`fn ldA2(i: u32) -> vec4<f32> {`);
      e(`  return textureLoad(A2_tex, vec2<u32>(i & 1023u, i >> 10u), 0);`);
      e(`}`);
    }
    if (split || sum2) {
      e(``);
      e(`fn ldB2(i: u32) -> vec4<f32> {`);
      e(`  return textureLoad(B2_tex, vec2<u32>(i & 1023u, i >> 10u), 0);`);
      e(`}`);
    }
  } else {
    e(`@group(0) @binding(0) var<storage, read> A: array<vec4<SF>>;`);
    e(`@group(0) @binding(1) var<storage, read> B: array<vec4<SF>>;`);
    e(`@group(0) @binding(2) var<storage, read_write> C: array<vec4<SF>>;`);
    e(`@group(1) @binding(0) var<uniform> p: Params;`);
  }
  e(``);
  e(`@compute @workgroup_size(8)`);
  e(`fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {`);
  e(`  let m0 = (wg.y * ${LY} + li / ${LX}) * ${wm}u; // first row of this tile`);
  e(`  let n0 = (wg.x * ${LX} + li % ${LX}) * ${wn}u; // first column of this tile`);
  e(`  let K4 = p.K / 4u;`);
  e(`  let M4 = p.M / 4u;`);
  e(`  let N4 = p.N / 4u;`);
  for (const r of range(tm)) e(`  let ra${r} = min(m0 + ${r}u, p.M - 1u) * K4;`);
  for (const q of range(qm)) e(`  let qa${q} = min(m0 / 4u + ${q}u, max(M4, 1u) - 1u);`);
  for (const q of range(qn)) e(`  let qb${q} = min(n0 / 4u + ${q}u, N4 - 1u);`);
  for (const c of range(wn)) e(`  let rb${c} = min(n0 + ${c}u, p.N - 1u) * K4;`);
  for (const r of range(tm)) {
    e(`  ${range(qn).map((j) => `var c${r}_${j} = vec4<f32>();`).join(" ")}`);
  }
  for (const r of range(tm)) e(`  var a${r}: vec4<f32>; // A[m0 + ${r}, k..k+3]`);
  for (const kk of range(4)) {
    e(`  ${
      range(qn).map((j) => `var b${kk}_${j}: vec4<f32>;`).join(" ")
    } // B[k + ${kk}, n0 + 4j..]`);
  }
  const loop = (A: (i: string) => string, B: (i: string) => string, what: string) => {
    e(`  for (var k4 = 0u; k4 < K4; k4++) {${what}`);
    e(`    if (TRANS_A) {`);
    for (const kk of range(4)) {
      for (const q of range(qm)) {
        // pair: the last qm / 2 row groups read A2 at the rows of the first
        const ld = pair && q >= qm / 2 ? `ldA2((k4 * 4u + ${kk}u) * M4 + qa${q - qm / 2})` : A(
          `(k4 * 4u + ${kk}u) * M4 + qa${q}`,
        );
        e(`      let t${kk}_${q} = ${ld};`);
      }
    }
    for (const r of range(tm)) {
      const q = Math.floor(r / 4);
      const c = XYZW[r % 4];
      e(`      a${r} = vec4<f32>(${range(4).map((kk) => `t${kk}_${q}.${c}`).join(", ")});`);
    }
    e(`    } else {`);
    for (const r of range(tm)) e(`      a${r} = ${A(`ra${r} + k4`)};`);
    e(`    }`);
    e(
      split
        ? `    { // B is always transposed here: ${fwd ? "Wg and Wu" : "B and B2"} are (N, K)`
        : `    if (TRANS_B) {`,
    );
    for (const c of range(tn)) {
      // fwd: columns wn.. read the second weight at the same rows as columns 0..
      e(`      let u${c} = ${c < wn ? B(`rb${c} + k4`) : `ldB2(rb${c - wn} + k4)`};`);
    }
    for (const kk of range(4)) {
      for (const j of range(qn)) {
        e(`      b${kk}_${j} = vec4<f32>(${
          range(4).map((i) => `u${4 * j + i}.${XYZW[kk]}`).join(", ")
        });`);
      }
    }
    if (!split) {
      e(`    } else {`);
      for (const kk of range(4)) {
        for (const j of range(qn)) {
          e(`      b${kk}_${j} = ${B(`(k4 * 4u + ${kk}u) * N4 + qb${j}`)};`);
        }
      }
    }
    e(`    }`);
    for (const r of range(tm)) {
      for (const kk of range(4)) {
        e(`    ${
          range(qn).map((j) =>
            `c${r}_${j} = fma(vec4<f32>(a${r}.${XYZW[kk]}), b${kk}_${j}, c${r}_${j});`
          ).join(" ")
        }`);
      }
    }
    e(`  }`);
  };
  loop(A, B, "");
  if (sum2) loop((i) => `ldA2(${i})`, (i) => `ldB2(${i})`, " // + A2·B2");
  for (const r of range(tm)) {
    const mr = r % wm; // pair: rows wm.. are C2's rows 0..
    e(`  if (m0 + ${mr}u < p.M) {`);
    e(`    let o = (m0 + ${mr}u) * N4 + n0 / 4u;`);
    if (pair && r >= wm) {
      for (const j of range(qn)) e(`    store2(o + ${j}u, n0 + ${4 * j}u, c${r}_${j});`);
    } else if (split) {
      for (const j of range(qn / 2)) {
        e(`    store(o + ${j}u, n0 + ${4 * j}u, c${r}_${j}, c${r}_${j + qn / 2});`);
      }
    } else {
      for (const j of range(qn)) e(`    store(o + ${j}u, n0 + ${4 * j}u, c${r}_${j});`);
    }
    e(`  }`);
  }
  e(`}`);
  e(``);
  if (fwd) {
    e(`const GELU_K = 0.7978845608028654; // √(2/π)`);
    e(``);
    e(`fn act(x: vec4<f32>) -> vec4<f32> {`);
    e(`  if (ACT == 0u) {`);
    e(`    return x / (1.0 + exp(-clamp(x, vec4<f32>(-80.0), vec4<f32>(80.0))));`);
    e(`  }`);
    e(`  let xc = clamp(x, vec4<f32>(-10.0), vec4<f32>(10.0));`);
    e(`  let t = tanh(GELU_K * (xc + 0.044715 * xc * xc * xc));`);
    e(`  return 0.5 * x * (1.0 + t);`);
    e(`}`);
    e(``);
    e(`// g = gate, u = up at h[o]: h = act(g)·u from both rounded to SF (as stored); skipped past`);
    e(`// the last column.`);
    e(`fn store(o: u32, n: u32, g: vec4<f32>, u: vec4<f32>) {`);
    e(`  if (n < p.N) {`);
    e(`    let gs = vec4<SF>(g);`);
    e(`    let us = vec4<SF>(u);`);
    if (keepGU) {
      e(`    gate[o] = gs;`);
      e(`    up[o] = us;`);
    }
    e(`    h[o] = vec4<SF>(act(vec4<f32>(gs)) * vec4<f32>(us));`);
    e(`  }`);
    e(`}`);
    return L.join("\n") + "\n";
  }
  if (glu) {
    e(`const GELU_K = 0.7978845608028654; // √(2/π)`);
    e(``);
    e(`// dh = v at C[o]: dGate[o] = v·up·act'(gate), dUp[o] = v·act(gate); skipped past the last column.`);
    e(`fn store(o: u32, n: u32, v: vec4<f32>) {`);
    e(`  if (n < p.N) {`);
    e(`    let x = vec4<f32>(gate[o]);`);
    e(`    var a: vec4<f32>;`);
    e(`    var da: vec4<f32>;`);
    e(`    if (ACT == 0u) {`);
    e(`      let sg = 1.0 / (1.0 + exp(-clamp(x, vec4<f32>(-80.0), vec4<f32>(80.0))));`);
    e(`      a = x * sg;`);
    e(`      da = sg * (1.0 + x * (1.0 - sg));`);
    e(`    } else {`);
    e(`      let xc = clamp(x, vec4<f32>(-10.0), vec4<f32>(10.0));`);
    e(`      let t = tanh(GELU_K * (xc + 0.044715 * xc * xc * xc));`);
    e(`      a = 0.5 * x * (1.0 + t);`);
    e(`      da = 0.5 * (1.0 + t) + 0.5 * xc * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * 0.044715 * xc * xc);`);
    e(`    }`);
    e(`    dgate[o] = vec4<SF>(v * vec4<f32>(up[o]) * da);`);
    e(`    dup[o] = vec4<SF>(v * a);`);
    e(`  }`);
    e(`}`);
    return L.join("\n") + "\n";
  }
  if (cols) {
    e(`// c at C[o], c2 at C2[o]; skipped past the last column.`);
    e(`fn store(o: u32, n: u32, c: vec4<f32>, c2: vec4<f32>) {`);
    e(`  if (n < p.N) {`);
    e(`    C[o] = vec4<SF>(c);`);
    e(`    C2[o] = vec4<SF>(c2);`);
    e(`  }`);
    e(`}`);
    return L.join("\n") + "\n";
  }
  if (pair) {
    e(`// C2[o] = v, or C2[o] += v when accumulating; skipped past the last column.`);
    e(`fn store2(o: u32, n: u32, v: vec4<f32>) {`);
    e(`  if (n < p.N) {`);
    e(`    if (p.accumulate != 0u) {`);
    e(`      C2[o] = vec4<SF>(vec4<f32>(C2[o]) + v);`);
    e(`    } else {`);
    e(`      C2[o] = vec4<SF>(v);`);
    e(`    }`);
    e(`  }`);
    e(`}`);
    e(``);
  }
  e(`// C[o] = v, or C[o] += v when accumulating; skipped past the last column.`);
  e(`fn store(o: u32, n: u32, v: vec4<f32>) {`);
  e(`  if (n < p.N) {`);
  e(`    if (p.accumulate != 0u) {`);
  e(`      C[o] = vec4<SF>(vec4<f32>(C[o]) + v);`);
  e(`    } else {`);
  e(`      C[o] = vec4<SF>(v);`);
  e(`    }`);
  e(`  }`);
  e(`}`);
  return L.join("\n") + "\n";
}

/** Path of a committed kernel. */
export function kernelPath(name: string): URL {
  return new URL(`../${name}.wgsl`, import.meta.url);
}

/** Names of committed kernels whose text differs from the generator's output. */
export function staleKernels(): string[] {
  return VEC4_KERNELS.filter((c) => {
    let text = "";
    try {
      text = Deno.readTextFileSync(kernelPath(c.name));
    } catch { /* missing counts as stale */ }
    return text !== matmulVec4Source(c);
  }).map((c) => c.name);
}

if (import.meta.main) {
  if (Deno.args.includes("--check")) {
    const stale = staleKernels();
    if (stale.length > 0) {
      console.error(
        `stale generated kernels: ${stale.join(", ")}; run deno run -A ${
          new URL(import.meta.url).pathname
        }`,
      );
      Deno.exit(1);
    }
  } else {
    for (const c of VEC4_KERNELS) Deno.writeTextFileSync(kernelPath(c.name), matmulVec4Source(c));
  }
}
