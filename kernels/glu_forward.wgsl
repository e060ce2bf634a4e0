// Gated linear unit: h[i] = act(gate[i]) · up[i], act = SiLU (ACT = 0) or tanh-GELU (ACT = 1):
//   silu(x) = x · σ(x);   gelu_tanh(x) = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
// Overflow guards: exp's argument is clamped to ±80 and tanh's input x to ±10 (where tanh
// is already ±1 in f32), so huge |x| gives finite results and no NaN from tanh.
//
// Bindings:  @group(0) @binding(0) gate : array<f32>  (S, I)
//            @group(0) @binding(1) up   : array<f32>  (S, I)
//            @group(0) @binding(2) h    : array<f32>  (S, I)   written
//            @group(1) @binding(0) p    : Params { n = S·I, nx }
// Override:  ACT: u32 — 0 silu, 1 gelu_tanh.
// Dispatch:  grid1d(ceil(n / 256)) — one invocation per element; the linear workgroup index
//            is wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
override ACT: u32 = 0u;

struct Params { n: u32, nx: u32 }

@group(0) @binding(0) var<storage, read> gate: array<SF>;
@group(0) @binding(1) var<storage, read> up: array<SF>;
@group(0) @binding(2) var<storage, read_write> h: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

const GELU_K = 0.7978845608028654; // √(2/π)

fn act(x: f32) -> f32 {
  if (ACT == 0u) {
    return x / (1.0 + exp(-clamp(x, -80.0, 80.0)));
  }
  let xc = clamp(x, -10.0, 10.0);
  let t = tanh(GELU_K * (xc + 0.044715 * xc * xc * xc));
  return 0.5 * x * (1.0 + t);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * p.nx + wg.x) * 256u + li;
  if (i >= p.n) {
    return;
  }
  h[i] = SF(act(f32(gate[i])) * f32(up[i]));
}
