// AdamW over K tensors in one dispatch: the multi-tensor form of adamw.wgsl, with the same
// update of each element (PyTorch semantics; see adamw.wgsl for the formulas). Invocation i
// updates element i of every tensor j with i < n_j, so the dispatch covers the largest tensor
// and the caller groups tensors of similar sizes (lib/ops/adamw.ts, adamwGroups): lavapipe runs
// an `if` under a mask, so a tensor's branch costs about the same in invocations past its end.
// (Giving each tensor its own run of workgroups instead made every invocation evaluate all K
// branches, ~2× slower than K separate dispatches.) The tensors are statically unrolled (no
// dynamic binding index): lib/ops/adamw.ts generates TENSOR_FIELDS (n_j, decay_j of each
// tensor), BINDINGS and TENSORS (the branch of each tensor); CLIP_BINDING and CLIP_SCALE are
// as in adamw.wgsl. VEC declares VF, the unit of work: vec4<f32> when every n_j is a multiple of
// 4 (the tensors are then bound as arrays of vec4 and n_j counts vec4s: on lavapipe each storage
// access is a per-lane loop, so one vec4 access does the work of four), else f32.
//
// Bindings (B = 4, or 5 with working copies; j = 0..K−1):
//            @group(0) @binding(B·j)     param_j : array<f32>  (n_j)   read_write
//            @group(0) @binding(B·j + 1) grad_j  : array<SF>   (n_j)
//            @group(0) @binding(B·j + 2) m_j     : array<f32>  (n_j)   read_write
//            @group(0) @binding(B·j + 3) v_j     : array<f32>  (n_j)   read_write
//            @group(0) @binding(B·j + 4) work_j  : array<SF>   (n_j)   written; mixed precision
//            (element types vec4<f32> / vec4<SF> in the vec4 variant)
//            @group(0) @binding(B·K)     norm_sq : array<f32>  (1)     only when clipping
//            @group(1) @binding(0) p : Params { beta1, beta2, eps, step_size, bc2_sqrt,
//                                               max_norm, nx, inv_scale, then per tensor
//                                               n_j, decay_j = 1 − lr·wd_j }
// Dispatch:  grid1d(ceil(max_j n_j / 256)); the element (or vec4) is
//            i = (wg.y * nx + wg.x) * 256 + li.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)

struct Params {
  beta1: f32,
  beta2: f32,
  eps: f32,
  step_size: f32,
  bc2_sqrt: f32,
  max_norm: f32,
  nx: u32,
  inv_scale: f32,
{{TENSOR_FIELDS}}
}

{{BINDINGS}}
{{CLIP_BINDING}}
@group(1) @binding(0) var<uniform> p: Params;

fn clip_scale() -> f32 {
  {{CLIP_SCALE}}
}

{{VEC}}

struct Updated {
  param: VF,
  m: VF,
  v: VF,
}

// The updated (param, m, v) of one element (or four) with gradient `grad` (widened to f32).
fn adamw(param: VF, grad: VF, m: VF, v: VF, decay: f32) -> Updated {
  let g = grad * p.inv_scale * clip_scale();
  let mi = p.beta1 * m + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v + (1.0 - p.beta2) * g * g;
  let denom = sqrt(vi) / p.bc2_sqrt + p.eps;
  return Updated(param * decay - p.step_size * mi / denom, mi, vi);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * p.nx + wg.x) * 256u + li;
{{TENSORS}}
}
