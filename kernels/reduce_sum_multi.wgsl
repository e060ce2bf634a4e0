// The first stage of a deterministic two-stage sum over K tensors in one dispatch: the
// multi-tensor form of reduce_sum.wgsl, with the same partial sums. Tensor j is split into
// chunks of chunk_j elements, one workgroup each: the workgroups w ∈ [end_{j−1}, end_j)
// (end_{−1} = 0) take its chunks g = w − end_{j−1} in order, sum x_j[g·chunk_j ..
// min(n_j, (g+1)·chunk_j)) (or the squares, with square = 1) and write out[offset + w].
// Threads stride over the chunk, then a fixed tree combines them, exactly as reduce_sum.wgsl
// does: the partials are bit-identical to K reduce_sum dispatches writing at consecutive
// offsets. The tensors are statically unrolled (no dynamic binding index): lib/ops/reduce.ts
// generates TENSOR_FIELDS (n_j, chunk_j, end_j), BINDINGS and TENSORS (the branch
// of each tensor; uniform within a workgroup).
//
// Bindings:  @group(0) @binding(j)  x_j : array<SF>   (n_j)        j = 0..K−1
//            @group(0) @binding(K)  out : array<f32>  (≥ offset + end_{K−1})  written
//            @group(1) @binding(0)  p   : Params { offset, square, then n_j, chunk_j, end_j }
// Dispatch:  (end_{K−1}, 1, 1), one workgroup of 256 per chunk (end_{K−1} ≤ 65535).

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)

struct Params {
  offset: u32,
  square: u32,
{{TENSOR_FIELDS}}
}

{{BINDINGS}}
@group(1) @binding(0) var<uniform> p: Params;

const WG = 256u;
var<workgroup> red: array<f32, WG>;

fn term(v: f32) -> f32 {
  return select(v, v * v, p.square != 0u);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = wg.x;
  var acc = 0.0;
{{TENSORS}}
  red[li] = acc;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) {
      red[li] += red[li + k];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    out[p.offset + w] = red[0];
  }
}
