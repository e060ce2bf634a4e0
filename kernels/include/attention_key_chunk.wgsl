// The key-chunk load of kernels/attention_fwd.wgsl and attention_bwd_dq.wgsl, which stream k
// and v as the operands A and B (attention_common.wgsl). The including kernel declares C, the
// keys per chunk.
#include "attention_common"

// Loads the k and v rows of keys [j0, j0 + C) of kv head g into kc and vc, clamped to the
// sequence (keys past its end are masked by the caller).
fn loadKeyChunk(
  j0: u32,
  g: u32,
  kc: ptr<function, array<vec4<f32>, C * HD4>>,
  vc: ptr<function, array<vec4<f32>, C * HD4>>,
) {
  let kStride = p.KV * HD4;
  for (var c = 0u; c < C; c++) { // @unroll
    let kb = min(j0 + c, p.S - 1u) * kStride + g * HD4;
    for (var d = 0u; d < HD4; d++) { // @unroll
      (*kc)[c * HD4 + d] = loadA(kb + d);
      (*vc)[c * HD4 + d] = loadB(kb + d);
    }
  }
}
