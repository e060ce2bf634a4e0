"""bitsandbytes' NF4 quantisation (double-quantised absmax), run in PyTorch for a cross-check.

The functions below are copied from bitsandbytes (MIT licence, Copyright (c) Facebook, Inc. and
its affiliates), github.com/bitsandbytes-foundation/bitsandbytes at commit 95f9af3:
- create_dynamic_map: bitsandbytes/functional.py;
- NF4 values: get_4bit_type("nf4"), bitsandbytes/functional.py;
- quantize_blockwise_kernel / quantize_4bit_kernel: the "default" (pure PyTorch) backend,
  bitsandbytes/backends/default/ops.py (`bitsandbytes::quantize_blockwise`,
  `bitsandbytes::quantize_4bit`), with `_get_4bit_quantize_bounds` inlined for NF4;
- quantize_nf4_nested: the compress_statistics branch of quantize_4bit, functional.py.
bitsandbytes itself needs CUDA or a compiled library; these parts are plain torch, so the
workbench's TypeScript reference (lib/reference/nf4.ts) is checked against them where Debian's
python3-torch is installed (tests/nf4_reference_test.ts).

Input (stdin): JSON {"quantize": [[f32 …], …], "sums": [[f32 …], …]}. Output (stdout): JSON
{"torch", "quantized": [{packed, absmax, nested_absmax, offset, quant_map, nested_quant_map}, …],
"sums": [torch's f32 sum of each array (the reduction absmax.mean() uses)]}.
"""

import json
import sys

import torch


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(
            2 ** (i + non_sign_bits - max_exponent_bits) + 1
            if signed
            else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1,
        )
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()

    if additional_items > 0:
        boundaries = torch.linspace(0.1, 1, additional_items + 1, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()

    data.append(0)
    data.append(1.0)

    assert len(data) == 2**total_bits

    gap = 256 - len(data)
    for i in range(gap):
        data.append(0)

    data.sort()
    return torch.tensor(data, dtype=torch.float32)


NF4 = torch.tensor(
    [
        -1.0,
        -0.6961928009986877,
        -0.5250730514526367,
        -0.39491748809814453,
        -0.28444138169288635,
        -0.18477343022823334,
        -0.09105003625154495,
        0.0,
        0.07958029955625534,
        0.16093020141124725,
        0.24611230194568634,
        0.33791524171829224,
        0.44070982933044434,
        0.5626170039176941,
        0.7229568362236023,
        1.0,
    ]
)
NF4.div_(NF4.abs().max())


def quantize_blockwise_kernel(A, code, blocksize):
    A_flat = A.reshape(-1).float()
    n = A_flat.numel()
    rem = n % blocksize
    full = n - rem
    blocks = full // blocksize
    A_com = A_flat[:full].reshape(blocks, blocksize)
    absmax = A_com.abs().max(dim=-1)[0]
    scaled = torch.clamp(A_com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am = A_flat[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(A_flat[full:] / am, -1, 1)])
    bounds = (code[:-1] + code[1:]) / 2
    q = torch.bucketize(scaled, bounds, out_int32=True).to(torch.uint8)
    return q.reshape(A.shape), absmax


def quantize_4bit_kernel(A, blocksize):
    code = NF4
    order = torch.argsort(code)
    bounds = (code[order[:-1]] + code[order[1:]]) / 2
    A_flat = A.reshape(-1).float()
    n = A_flat.numel()
    rem = n % blocksize
    full = n - rem
    blocks = full // blocksize
    A_com = A_flat[:full].reshape(blocks, blocksize)
    absmax = A_com.abs().max(dim=-1)[0]
    scaled = torch.clamp(A_com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am = A_flat[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(A_flat[full:] / am, -1, 1)])
    if scaled.numel() % 2:
        scaled = torch.nn.functional.pad(scaled, (0, 1))
    q = torch.bucketize(scaled, bounds, out_int32=True)
    q8 = q.to(torch.uint8)
    packed = ((q8[::2] << 4) | q8[1::2]).unsqueeze(1)
    return packed, absmax


def quantize_nf4_nested(A):
    packed, absmax = quantize_4bit_kernel(A, 64)
    offset = absmax.mean()
    dyn = create_dynamic_map()
    qabsmax, absmax2 = quantize_blockwise_kernel(absmax - offset, dyn, 256)
    return packed, qabsmax, absmax2, offset, dyn


def quantize_json(values):
    A = torch.tensor(values, dtype=torch.float32)
    packed, qabsmax, absmax2, offset, dyn = quantize_nf4_nested(A)
    return {
        "packed": packed.reshape(-1).tolist(),
        "absmax": qabsmax.reshape(-1).tolist(),
        "nested_absmax": absmax2.tolist(),
        "offset": offset.item(),
        "quant_map": NF4.tolist(),
        "nested_quant_map": dyn.tolist(),
    }


def main():
    req = json.load(sys.stdin)
    json.dump(
        {
            "torch": torch.__version__,
            # torch's f32 CPU sum, which absmax.mean() rests on
            "sums": [torch.tensor(v, dtype=torch.float32).sum().item() for v in req.get("sums", [])],
            "quantized": [quantize_json(v) for v in req.get("quantize", [])],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
