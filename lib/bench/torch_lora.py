"""LoRA in PyTorch, written from PEFT's documented semantics (no peft package): the
independent side of the LoRA exactness tests.

PEFT's `LoraLayer` / `lora.Linear` (huggingface/peft, src/peft/tuners/lora/layer.py), dropout 0:

    result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling
    scaling = lora_alpha / r            (use_rslora: lora_alpha / sqrt(r))
    lora_A: nn.Linear(in, r, bias=False), init kaiming_uniform_(a=sqrt(5))
    lora_B: nn.Linear(r, out, bias=False), init zeros
    the base layer is frozen (requires_grad False): no gradient, not given to the optimizer

Two entry points:

- `LoraLinear` (an nn.Module) and `lora_linear(x, weight, bias, lora_A, lora_B, scaling)`, the
  functional form a model's loss function uses for each adapted projection. The future
  llama3-tiny LoRA test calls it from lib/bench/torch_llama.py's `loss_fn`: with a job field
  `"lora": {"r", "alpha", "rslora", "targets": ["q_proj", …]}` each targeted `x @ P[name].T`
  becomes `lora_linear(x, P[name], None, L[m + ".lora_A.weight"], L[m + ".lora_B.weight"], s)`
  with the adapters L (PEFT's names inside the model, from the same safetensors file as the
  base) as the only tensors given to torch.optim.AdamW.
- `main()`, run by tests/lora_torch_test.ts as `python3 lib/bench/torch_lora.py <jobs.json>`
  (a list of jobs, one process, so torch is imported once): per job one LoRA layer from given weights, loss = sum(y * R) (so dL/dy = R), the step-0 output and
  gradients, then `steps` steps of torch.optim.AdamW (+ clip_grad_norm_ when maxGradNorm > 0).
  Prints one JSON line: a list of {"y", "dx", "dA", "dB", "losses", "A", "B", "torch"} (flat lists).
"""

import json
import math
import sys

import torch
import torch.nn as nn


def peft_scaling(r, lora_alpha, use_rslora=False):
    """PEFT's `update_layer`: lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA."""
    return lora_alpha / math.sqrt(r) if use_rslora else lora_alpha / r


def lora_linear(x, weight, bias, lora_A, lora_B, scaling):
    """y = x W^T (+ b) + (x A^T) B^T * scaling, in PEFT's order of operations."""
    result = torch.nn.functional.linear(x, weight, bias)
    return result + torch.nn.functional.linear(torch.nn.functional.linear(x, lora_A), lora_B) * scaling


class LoraLinear(nn.Module):
    """A frozen nn.Linear with a LoRA adapter (PEFT's `lora.Linear`, dropout 0)."""

    def __init__(self, base_layer, r, lora_alpha, use_rslora=False):
        super().__init__()
        self.base_layer = base_layer
        for p in self.base_layer.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Linear(base_layer.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base_layer.out_features, bias=False)
        self.lora_dropout = nn.Identity()
        self.scaling = peft_scaling(r, lora_alpha, use_rslora)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        result = self.base_layer(x)
        return result + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


def run_job(job):
    """One layer's step-0 outputs and gradients, and `steps` AdamW steps (see the module doc)."""
    torch.manual_seed(0)
    S, N, K, r = job["S"], job["N"], job["K"], job["r"]
    f = lambda v, *shape: torch.tensor(v, dtype=torch.float32).reshape(*shape)  # noqa: E731
    base = nn.Linear(K, N, bias=job.get("bias") is not None)
    with torch.no_grad():
        base.weight.copy_(f(job["w"], N, K))
        if job.get("bias") is not None:
            base.bias.copy_(f(job["bias"], N))
    layer = LoraLinear(base, r, job["alpha"], job.get("rslora", False))
    with torch.no_grad():
        layer.lora_A.weight.copy_(f(job["a"], r, K))
        layer.lora_B.weight.copy_(f(job["b"], N, r))
    x = f(job["x"], S, K).requires_grad_(True)
    R = f(job["dy"], S, N)
    o = job["adamw"]
    params = [layer.lora_A.weight, layer.lora_B.weight]
    assert all(not p.requires_grad for p in base.parameters())
    opt = torch.optim.AdamW(
        params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"], weight_decay=o["weightDecay"]
    )
    out = {"losses": []}
    for step in range(job["steps"]):
        opt.zero_grad(set_to_none=True)
        y = layer(x)
        loss = (y * R).sum()
        loss.backward()
        if step == 0:
            out["y"] = y.detach().flatten().tolist()
            out["dx"] = x.grad.flatten().tolist()
            out["dA"] = layer.lora_A.weight.grad.flatten().tolist()
            out["dB"] = layer.lora_B.weight.grad.flatten().tolist()
        assert base.weight.grad is None, "the frozen base got a gradient"
        out["losses"].append(loss.item())
        if o["maxGradNorm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, o["maxGradNorm"])
        opt.step()
        x.grad = None
    out["A"] = layer.lora_A.weight.detach().flatten().tolist()
    out["B"] = layer.lora_B.weight.detach().flatten().tolist()
    out["torch"] = torch.__version__
    return out


def main():
    jobs = json.load(open(sys.argv[1]))
    print(json.dumps([run_job(job) for job in (jobs if isinstance(jobs, list) else [jobs])]))


if __name__ == "__main__":
    main()
