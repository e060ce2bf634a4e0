// Cross-entropy of logit rows in one pass over each row for the statistics and one for the
// outputs: the loss, the logit gradient, or both (the fused forward + backward of a head
// chunk). With z = c · tanh(x / c) when softcap c > 0 (else z = x) and lse = log Σ_v exp(z):
//   loss[n]    = lse − z[target]                                  (LOSS)
//   grad[n, v] = gradScale · (exp(z − lse) − [v = target]) · dz/dx  (GRAD; dz/dx = 1 − (z/c)²)
// Ignored rows (target = ignore_index) get loss 0 and a zero gradient; a target outside
// 0..V-1 gives NaN. Reads are vec4 (V % 4 == 0); each thread rewrites only the texels it
// read, so the in-place gradient (grad over the logits' own storage) is race-free.
//
// Bindings (declared by the template value BINDINGS, lib/ops/cross_entropy.ts):
//            logits  : array<vec4<SF>>   (N, V/4)  read (read_write when the gradient is
//                                                   written in place)
//            targets : array<i32>        (N)
//            losses  : array<f32>        (N)       written (LOSS)
//            dlogits : array<vec4<SF>>   (N, V/4)  written (GRAD, out of place)
//            @group(1) @binding(0) p : Params { N, V4 = V/4, softcap, ignore_index, grad_scale, nx }
// Template:  BINDINGS (the declarations and ld(i), st(i, v), putLoss(row, v); the unused
//            ones are empty functions), WG (threads per row),
//            LOSS, GRAD (true / false).
// Dispatch:  grid1d(N) — one workgroup of WG threads per row; row = wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { N: u32, V4: u32, softcap: f32, ignore_index: i32, grad_scale: f32, nx: u32 }

@group(1) @binding(0) var<uniform> p: Params;
{{BINDINGS}}

const WG = {{WG}}u;
const LOSS = {{LOSS}};
const GRAD = {{GRAD}};
const LOWEST = -3.0e38;
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

fn capped(x: vec4<f32>) -> vec4<f32> {
  if (p.softcap > 0.0) {
    return p.softcap * tanh(clamp(x / p.softcap, vec4<f32>(-10.0), vec4<f32>(10.0)));
  }
  return x;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * p.nx + wg.x;
  if (row >= p.N) {
    return;
  }
  let base = row * p.V4;
  var m = LOWEST;
  var s = 0.0;
  for (var i = li; i < p.V4; i += WG) {
    let z = capped(ld(base + i));
    let mz = max(max(z.x, z.y), max(z.z, z.w));
    if (mz > m) {
      s *= exp(m - mz);
      m = mz;
    }
    let e = exp(z - vec4<f32>(m));
    s += e.x + e.y + e.z + e.w;
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
  let lse = red_m[0] + log(red_s[0]);
  let t = targets[row];
  let ignored = t == p.ignore_index;
  let invalid = !ignored && (t < 0 || u32(t) >= 4u * p.V4);
  if (LOSS && li == 0u) {
    if (ignored) {
      putLoss(row, 0.0);
    } else if (invalid) {
      putLoss(row, bitcast<f32>(0x7fc00000u));
    } else {
      let zt = capped(ld(base + u32(t) / 4u));
      putLoss(row, lse - zt[u32(t) % 4u]);
    }
  }
  if (GRAD) {
    // LOSS and an in-place gradient: every thread must have read its target texel before
    // thread (t / 4) % WG overwrites it; the loss above is read by thread 0 only.
    if (LOSS) {
      workgroupBarrier();
    }
    let nan = vec4<f32>(bitcast<f32>(0x7fc00000u));
    for (var i = li; i < p.V4; i += WG) {
      var g = vec4<f32>(0.0);
      if (invalid) {
        g = nan;
      } else if (!ignored) {
        let z = capped(ld(base + i));
        g = exp(z - vec4<f32>(lse));
        let v0 = i32(4u * i);
        g -= select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<i32>(v0, v0 + 1, v0 + 2, v0 + 3) == vec4<i32>(t));
        if (p.softcap > 0.0) {
          let r = z / p.softcap;
          g *= 1.0 - r * r;
        }
        g *= p.grad_scale;
      }
      st(base + i, g);
    }
  }
}
