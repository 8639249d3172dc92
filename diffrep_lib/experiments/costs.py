"""What a network costs: FLOPs counted by torch, an analytic count to check them, and training throughput
(ch. 2, `make bench`).

FLOPs follow torch.utils.flop_counter: 2 per multiply-add of every matmul, convolution and attention
product (normalisations, activations and additions are not counted; they are a few per cent at most here).
torch 2.13's counter knows the CUDA attention kernels but not the CPU one, so on a CPU it silently counts
attention as zero; `count_flops` adds the CPU kernel with torch's own attention formulas (a finding of
ch. 2, where the analytic count of a DiT block exposed it).
"""
from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from ..zoo import recipes, training

_aten = torch.ops.aten


def _cpu_sdpa(query, key, value, *args, **kwargs) -> int:
    return sdpa_flop_count(query.shape, key.shape, value.shape)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


_cpu_sdpa._get_raw = _cpu_sdpa_backward._get_raw = True     # take the tensors, not torch's shape wrapper
CPU_ATTENTION = {_aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
                 _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward}


def count_flops(fn, *args, **kwargs) -> tuple[int, dict[str, int]]:
    """FLOPs of one call ``fn(*args, **kwargs)``: (total, per module path), CPU attention included."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        fn(*args, **kwargs)
    per_module = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    return counter.get_total_flops(), per_module


@torch.no_grad()
def forward_flops(net, image_shape=(1, 28, 28), conditional: bool = True) -> int:
    """FLOPs of one forward pass of a denoiser net(x, t, y) for one image."""
    x, t = torch.zeros(1, *image_shape), torch.tensor([500.0])
    y = torch.zeros(1, dtype=torch.long) if conditional and getattr(net, "null_label", None) is not None else None
    return count_flops(net, x, t, y)[0]


def dit_block_flops(tokens: int, dim: int, mlp_ratio: float = 4.0) -> int:
    """Analytic FLOPs of one DiT block on one image (T tokens of width D, MLP width rD):
    adaLN regression 2*D*6D, QKV 2*T*D*3D, scores QK^T 2*T*T*D, weighted sum AV 2*T*T*D,
    output projection 2*T*D*D, MLP 2 * 2*T*D*rD."""
    T, D, H = tokens, dim, int(dim * mlp_ratio)
    return 2 * D * 6 * D + 2 * T * D * 3 * D + 4 * T * T * D + 2 * T * D * D + 4 * T * D * H


def training_step(net, opt, recipe, abar, xb, yb=None) -> float:
    """One optimiser step of the recipe's objective on the batch (xb, yb), at the precision the training loop
    uses for it on that device; returns the loss."""
    with training.autocast(recipe, xb.device):
        loss = training.objective(recipe, net, xb, yb, abar=abar, null=getattr(net, "null_label", None))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def training_throughput(net, recipe, xb, yb=None, steps: int = 5, warmup: int = 2, device: str = "cpu") -> dict:
    """Seconds per training step (the median of `steps`) and images per second of `net` on the batch
    (xb, yb), and FLOPs per step. It trains `net` for 1 + warmup + steps steps: pass a fresh network."""
    net = net.to(device).train()
    xb, yb = xb.to(device), (yb.to(device) if yb is not None else None)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr)
    abar = recipes.abar(recipe).to(device)
    flops, _ = count_flops(training_step, net, opt, recipe, abar, xb, yb)
    for _ in range(warmup):
        training_step(net, opt, recipe, abar, xb, yb)
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        training_step(net, opt, recipe, abar, xb, yb)
        sync()
        times.append(time.perf_counter() - t0)
    s = sorted(times)[len(times) // 2]                   # the median: robust to a stray hiccup
    return {"s_per_step": s, "img_per_s": len(xb) / s, "flops_per_step": flops}
