// AdamW step in place (PyTorch semantics), one invocation per element:
//   g ← grad · inv_scale · clip,  clip = min(1, max_norm / (√norm_sq[0] · inv_scale + 1e-6))
//   when clipping, else 1 (inv_scale = 1 / loss scale: gradients and norm_sq are of the scaled
//   loss in mixed precision; 1 otherwise)
//   p ← p · (1 − lr·wd)
//   m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²
//   p ← p − step_size · m / (√v / √bc2 + eps),   step_size = lr / bc1, bcK = 1 − βK^t
//   work ← p  (mixed precision: the f16 working copy of the f32 master weight p)
// The template fills {{CLIP_BINDING}} (the norm_sq binding, or nothing), {{CLIP_SCALE}}
// (the body of clip_scale()), {{WORK_BINDING}} (the working copy's binding, or nothing) and
// {{WORK_STORE}} (its store, or nothing).
//
// Bindings:  @group(0) @binding(0) param   : array<f32>  (n)   read_write
//            @group(0) @binding(1) grad    : array<SF>   (n)
//            @group(0) @binding(2) m       : array<f32>  (n)   read_write
//            @group(0) @binding(3) v       : array<f32>  (n)   read_write
//            @group(0) @binding(4) norm_sq : array<f32>  (1)   only when clipping
//            @group(0) @binding(4|5) work  : array<SF>   (n)   written; mixed precision only
//            @group(1) @binding(0) p       : Params { n, decay = 1 − lr·wd, beta1, beta2, eps,
//                                                      step_size, bc2_sqrt, max_norm, nx,
//                                                      inv_scale }
// Dispatch:  grid1d(ceil(n / 256)); the linear workgroup index is wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)

struct Params {
  n: u32,
  decay: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  step_size: f32,
  bc2_sqrt: f32,
  max_norm: f32,
  nx: u32,
  inv_scale: f32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<SF>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
{{CLIP_BINDING}}
{{WORK_BINDING}}
@group(1) @binding(0) var<uniform> p: Params;

fn clip_scale() -> f32 {
  {{CLIP_SCALE}}
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * p.nx + wg.x) * 256u + li;
  if (i >= p.n) {
    return;
  }
  let g = f32(grad[i]) * p.inv_scale * clip_scale();
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) / p.bc2_sqrt + p.eps;
  let pi = param[i] * p.decay - p.step_size * mi / denom;
  param[i] = pi;
  {{WORK_STORE}}
}
