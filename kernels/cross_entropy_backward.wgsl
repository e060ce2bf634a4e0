// Cross-entropy backward, in place over a buffer holding the logits:
//   buf[n,v] ← gradScale · (softmax(z[n])[v] − [v = target[n]]) · dz/dx
// with z = c · tanh(x / c), dz/dx = 1 − (z/c)² when softcap c > 0 (else z = x, dz/dx = 1).
// Rows whose target is ignore_index become 0; rows with a target outside 0..V-1 become NaN.
// Each thread rewrites only the columns it read, so the in-place update is race-free.
//
// Bindings:  @group(0) @binding(0) buf     : array<f32>  (N, V)   read_write: logits in, dlogits out
//            @group(0) @binding(1) targets : array<i32>  (N)
//            @group(1) @binding(0) p       : Params { N, V, softcap, ignore_index, grad_scale, nx }
// Dispatch:  grid1d(N) — one workgroup of 128 per row; row = wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { N: u32, V: u32, softcap: f32, ignore_index: i32, grad_scale: f32, nx: u32 }

@group(0) @binding(0) var<storage, read_write> buf: array<SF>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG = 128u;
const LOWEST = -3.0e38;
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

fn capped(x: f32) -> f32 {
  if (p.softcap > 0.0) {
    return p.softcap * tanh(clamp(x / p.softcap, -10.0, 10.0));
  }
  return x;
}

// A quiet NaN, read at run time: WGSL makes a NaN from a constant expression an error
// (Chromium's Tint rejects `bitcast<f32>(0x7fc00000u)`; naga folded it).
var<private> NAN_BITS: u32 = 0x7fc00000u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * p.nx + wg.x;
  if (row >= p.N) {
    return;
  }
  let base = row * p.V;
  var m = LOWEST;
  var s = 0.0;
  for (var v = li; v < p.V; v += WG) {
    let z = capped(f32(buf[base + v]));
    if (z > m) {
      s = s * exp(m - z) + 1.0;
      m = z;
    } else {
      s += exp(z - m);
    }
  }
  red_m[li] = m;
  red_s[li] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) {
      let m1 = red_m[li];
      let m2 = red_m[li + k];
      let mm = max(m1, m2);
      red_s[li] = red_s[li] * exp(m1 - mm) + red_s[li + k] * exp(m2 - mm);
      red_m[li] = mm;
    }
    workgroupBarrier();
  }
  let mx = red_m[0];
  let inv_sum = 1.0 / red_s[0];
  let t = targets[row];
  let ignored = t == p.ignore_index;
  let invalid = !ignored && (t < 0 || u32(t) >= p.V);
  for (var v = li; v < p.V; v += WG) {
    let i = base + v;
    var g = 0.0;
    if (invalid) {
      g = bitcast<f32>(NAN_BITS);
    } else if (!ignored) {
      let z = capped(f32(buf[i]));
      g = exp(z - mx) * inv_sum - select(0.0, 1.0, i32(v) == t);
      if (p.softcap > 0.0) {
        let r = z / p.softcap;
        g *= 1.0 - r * r;
      }
      g *= p.grad_scale;
    }
    buf[i] = SF(g);
  }
}
