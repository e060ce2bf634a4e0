"""The PyTorch peer of `deno task bench`: one Llama training step on the CPU.

Run by lib/bench/torch_peer.ts as a subprocess:

    python3 lib/bench/torch_llama.py <job.json>

job.json holds the model config (the fields of lib/models/config.ts), the path of a
safetensors file with the initial weights (Hugging Face names, f32), the token ids and
targets (-100 = ignored), the AdamW hyper-parameters, the number of warm-up and timed steps
the thread count and the step-0 loss of our own run (`expectLoss0`, with `tolerance`). The math is that of lib/reference/model.ts: RMSNorm, HF rotate_half
RoPE, causal grouped-query attention, SwiGLU (or tanh-GELU) MLP, LM head, mean
cross-entropy over valid targets; AdamW with PyTorch's own torch.optim.AdamW (weight decay
on matrices only) and torch.nn.utils.clip_grad_norm_. Written the way a PyTorch user would:
autograd, plain matmuls over the S x S scores (torch 1.13 has no fused attention).

With a `lora` field ({"r", "alpha", "rslora", "targets"}: module names among q_proj, k_proj,
v_proj, o_proj, gate_proj, up_proj, down_proj), the run is LoRA fine-tuning with PEFT's
documented semantics (peft.tuners.lora.layer.Linear, dropout 0, bias "none"), written here
without the peft package: every targeted projection computes

    y = x W^T + scaling * lora_B(lora_A(x)),   scaling = alpha / r  (rsLoRA: alpha / sqrt(r))

with A = `<module>.lora_A.weight` (r, in) and B = `<module>.lora_B.weight` (out, r) taken from
the weights file (our side's initial values); the base weights are frozen (requires_grad
False), and AdamW (weight decay on matrices, i.e. on A and B) and clipping see the adapters
only. The output then also holds `adapters`: every adapter's final values, flat, by name.

Step 0 (a warm-up step) is checked against `expectLoss0` before any step is timed: on a
mismatch the script prints the two losses to stderr and exits with status 3.
Prints one JSON line: {"losses": [...], "stepMs": [...], "threads": n, "torch": version}.
"""

import json
import math
import struct
import sys
import time

import torch
import torch.nn.functional as F

UNSUPPORTED = {
    "qkvBias": False,
    "tieEmbeddings": False,
    "embeddingScale": False,
    "normUnitOffset": False,
    "postNorms": False,
}


def read_safetensors(path):
    """Tensors of a safetensors file (F32 only), by name."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} is {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def check_config(cfg):
    bad = [k for k, v in UNSUPPORTED.items() if cfg.get(k, v) != v]
    if cfg.get("attnSoftcap", 0) or cfg.get("finalSoftcap", 0) or cfg.get("slidingWindow", 0):
        bad.append("soft-caps / sliding window")
    if bad:
        raise SystemExit(
            f"torch peer: config {cfg['name']} uses unsupported features: {', '.join(bad)}; "
            "the peer covers the Llama 3 / Llama 2 feature set"
        )


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(S, hd, theta):
    inv = theta ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2 / hd)
    ang = torch.arange(S, dtype=torch.float64)[:, None] * inv[None, :]  # (S, hd/2)
    ang = torch.cat([ang, ang], dim=-1)  # (S, hd)
    return ang.cos().float(), ang.sin().float()


def rope(x, cos, sin):
    # x (nh, S, hd)
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_scaling(lora):
    r, alpha = lora["r"], lora["alpha"]
    return alpha / math.sqrt(r) if lora.get("rslora") else alpha / r


def check_lora(cfg, lora, P):
    """The adapters the job names are all in the weights file, with PEFT's shapes."""
    bad = [t for t in lora["targets"] if t not in LORA_TARGETS]
    if bad or not lora["targets"]:
        raise SystemExit(
            f"torch peer: LoRA targets {lora['targets']} must be a non-empty subset of "
            f"{', '.join(LORA_TARGETS)}"
        )
    for i in range(cfg["layers"]):
        for t in lora["targets"]:
            part = "mlp" if t in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            m = f"model.layers.{i}.{part}.{t}"
            w = P[m + ".weight"]
            for n, shape in ((".lora_A.weight", (lora["r"], w.shape[1])),
                             (".lora_B.weight", (w.shape[0], lora["r"]))):
                if m + n not in P:
                    raise SystemExit(f"torch peer: LoRA adapter {m + n} missing from the weights")
                if tuple(P[m + n].shape) != shape:
                    raise SystemExit(
                        f"torch peer: {m + n} is {tuple(P[m + n].shape)}, expected {shape}"
                    )


def loss_fn(cfg, P, ids, targets, tables, mask, lora=None):
    S = ids.shape[0]
    scaling = lora_scaling(lora) if lora else 0.0

    def lin(x, m):
        """nn.Linear (no bias) of module m, plus PEFT's LoRA term when m is adapted."""
        y = x @ P[m + ".weight"].t()
        if lora and m.rsplit(".", 1)[1] in lora["targets"]:
            # peft.tuners.lora.layer.Linear.forward: result + lora_B(lora_A(dropout(x))) * scaling
            y = y + ((x @ P[m + ".lora_A.weight"].t()) @ P[m + ".lora_B.weight"].t()) * scaling
        return y

    H, KV, hd = cfg["heads"], cfg["kvHeads"], cfg["headDim"]
    eps = cfg["rmsEps"]
    cos, sin = tables
    h = P["model.embed_tokens.weight"][ids]  # (S, d)
    for i in range(cfg["layers"]):
        pre = f"model.layers.{i}."
        a = rms_norm(h, P[pre + "input_layernorm.weight"], eps)
        q = lin(a, pre + "self_attn.q_proj").view(S, H, hd).transpose(0, 1)
        k = lin(a, pre + "self_attn.k_proj").view(S, KV, hd).transpose(0, 1)
        v = lin(a, pre + "self_attn.v_proj").view(S, KV, hd).transpose(0, 1)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        s = (q @ k.transpose(1, 2)) * cfg["attnScale"] + mask  # (H, S, S)
        o = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(S, H * hd)
        h = h + lin(o, pre + "self_attn.o_proj")
        b = rms_norm(h, P[pre + "post_attention_layernorm.weight"], eps)
        gate = lin(b, pre + "mlp.gate_proj")
        up = lin(b, pre + "mlp.up_proj")
        act = F.silu(gate) if cfg["activation"] == "silu" else F.gelu(gate, approximate="tanh")
        h = h + lin(act * up, pre + "mlp.down_proj")
    h = rms_norm(h, P["model.norm.weight"], eps)
    logits = h @ P["lm_head.weight"].t()  # (S, V)
    return F.cross_entropy(logits, targets, ignore_index=-100, reduction="mean")


def main():
    job = json.load(open(sys.argv[1]))
    cfg = job["config"]
    check_config(cfg)
    threads = int(job.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    lora = job.get("lora")
    P = read_safetensors(job["weights"])
    if lora:
        check_lora(cfg, lora, P)
    # LoRA: the adapters train, the base is frozen; otherwise every weight trains
    trained = {k: v for k, v in P.items() if not lora or ".lora_" in k}
    for v in trained.values():
        v.requires_grad_(True)
    ids = torch.tensor(job["ids"], dtype=torch.long)
    targets = torch.tensor(job["targets"], dtype=torch.long)
    S = ids.shape[0]
    tables = rope_tables(S, cfg["headDim"], cfg["ropeTheta"])
    mask = torch.full((S, S), float("-inf")).triu(1)
    ad = job["adamw"]
    decay = [p for p in trained.values() if p.dim() >= 2]
    no_decay = [p for p in trained.values() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": ad["weightDecay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=ad["lr"],
        betas=(ad["beta1"], ad["beta2"]),
        eps=ad["eps"],
    )
    losses, step_ms = [], []
    for step in range(job["warmup"] + job["steps"]):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(cfg, P, ids, targets, tables, mask, lora)
        loss.backward()
        if ad["maxGradNorm"] > 0:
            torch.nn.utils.clip_grad_norm_(list(trained.values()), ad["maxGradNorm"])
        opt.step()
        value = loss.item()
        ms = (time.perf_counter() - t0) * 1000
        losses.append(value if math.isfinite(value) else None)
        if step == 0 and job.get("expectLoss0") is not None:
            want = job["expectLoss0"]
            if not math.isfinite(value) or abs(value - want) > job["tolerance"] * max(1.0, abs(want)):
                print(
                    f"torch peer: step-0 loss {value} differs from ours {want} "
                    f"(tolerance {job['tolerance']}); not timing a different computation",
                    file=sys.stderr,
                )
                sys.exit(3)
        if step >= job["warmup"]:
            step_ms.append(ms)
    result = {
        "losses": losses,
        "stepMs": step_ms,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if lora:
        result["adapters"] = {k: v.detach().reshape(-1).tolist() for k, v in trained.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
