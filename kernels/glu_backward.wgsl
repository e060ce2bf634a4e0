// Gated linear unit backward, for h = act(gate) · up:
//   dGate[i] = dh[i] · up[i] · act'(gate[i]);   dUp[i] = dh[i] · act(gate[i])
//   silu:      act' = σ(x) (1 + x (1 − σ(x)))
//   gelu_tanh: act' = 0.5 (1 + t) + 0.5 x (1 − t²) √(2/π) (1 + 3·0.044715 x²),
//              t = tanh(√(2/π) (x + 0.044715 x³)), with x clamped to ±10 inside t and the
//              second term (1 − t² is exactly 0 there), so huge |x| gives no inf·0 = NaN.
//
// Bindings:  @group(0) @binding(0) dh    : array<f32>  (S, I)
//            @group(0) @binding(1) gate  : array<f32>  (S, I)
//            @group(0) @binding(2) up    : array<f32>  (S, I)
//            @group(0) @binding(3) dgate : array<f32>  (S, I)   written
//            @group(0) @binding(4) dup   : array<f32>  (S, I)   written
//            @group(1) @binding(0) p     : Params { n = S·I, nx }
// Override:  ACT: u32 — 0 silu, 1 gelu_tanh.
// Dispatch:  grid1d(ceil(n / 256)) — one invocation per element; the linear workgroup index
//            is wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
override ACT: u32 = 0u;

struct Params { n: u32, nx: u32 }

@group(0) @binding(0) var<storage, read> dh: array<SF>;
@group(0) @binding(1) var<storage, read> gate: array<SF>;
@group(0) @binding(2) var<storage, read> up: array<SF>;
@group(0) @binding(3) var<storage, read_write> dgate: array<SF>;
@group(0) @binding(4) var<storage, read_write> dup: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

const GELU_K = 0.7978845608028654; // √(2/π)

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * p.nx + wg.x) * 256u + li;
  if (i >= p.n) {
    return;
  }
  let x = f32(gate[i]);
  var a: f32;
  var da: f32;
  if (ACT == 0u) {
    let sg = 1.0 / (1.0 + exp(-clamp(x, -80.0, 80.0)));
    a = x * sg;
    da = sg * (1.0 + x * (1.0 - sg));
  } else {
    let xc = clamp(x, -10.0, 10.0);
    let t = tanh(GELU_K * (xc + 0.044715 * xc * xc * xc));
    a = 0.5 * x * (1.0 + t);
    da = 0.5 * (1.0 + t) + 0.5 * xc * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * 0.044715 * xc * xc);
  }
  let g = f32(dh[i]);
  dgate[i] = SF(g * f32(up[i]) * da);
  dup[i] = SF(g * a);
}
