"""`make bench`: training throughput and achieved GFLOP/s of every zoo recipe, and sampling throughput
per sampler. A benchmark that prints numbers, not a test. Run it on an otherwise idle machine.

FLOPs of one training step (forward + backward) are counted with torch.utils.flop_counter; the
machine's measured matmul peak on these 2 cores is about 166 GFLOP/s in fp32 (400 in bf16).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import diffrep_lib as dr
from diffrep_lib import recipes, training, zoo
from diffrep_lib.models import build

PEAK_FP32 = 166.0


def step_fn(r, net, opt, abar, xb, yb):
    null = getattr(net, "null_label", None)
    terms = training.TASKS[r.task](net, xb, yb, abar=abar, prediction=r.prediction, p_uncond=r.p_uncond, null=null)
    loss = sum(v.mean() for v in terms.values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench_recipe(name: str, steps: int) -> dict:
    r = recipes.get(name)
    torch.manual_seed(0)
    net = build(r.model).train()
    opt = torch.optim.AdamW(net.parameters(), lr=r.lr)
    abar = dr.schedules.alphas_cumprod(dr.schedules.SCHEDULES[r.schedule](r.T))
    x, y, sample_batch = zoo._training_data(r)
    xb = sample_batch(r.batch_size, None) if sample_batch else x[:r.batch_size]
    yb = None if sample_batch or y is None else y[:r.batch_size]
    with FlopCounterMode(display=False) as fc:
        step_fn(r, net, opt, abar, xb, yb)
    flops = fc.get_total_flops()
    for _ in range(2):
        step_fn(r, net, opt, abar, xb, yb)
    t0 = time.perf_counter()
    for _ in range(steps):
        step_fn(r, net, opt, abar, xb, yb)
    dt = (time.perf_counter() - t0) / steps
    return {"recipe": name, "batch": r.batch_size, "s_per_step": dt, "img_per_s": r.batch_size / dt,
            "gflop_per_step": flops / 1e9, "gflop_per_s": flops / 1e9 / dt}


def bench_sampling(n: int, nfe: int) -> list[dict]:
    D = dr.denoisers.clip_x0(dr.zoo.denoiser("unet_fmnist", "quick"))
    raw = dr.zoo.denoiser("unet_fmnist", "quick")
    out = []
    for name in ("ddim", "ddpm", "heun", "dpmpp_2m", "euler_maruyama"):
        for bf16 in (False, True):
            sig = dr.generation.sigma_grid(raw, dr.samplers.steps_for_nfe(name, nfe))
            t0 = time.perf_counter()
            dr.generation.generate(D, n, sampler=name, sigmas=sig, cond=torch.arange(n) % 10, bf16=bf16, batch=n)
            dt = time.perf_counter() - t0
            used = dr.samplers.nfe(name, len(sig) - 1)
            out.append({"sampler": name, "nfe": used, "bf16": bf16, "img_per_s": n / dt,
                        "ms_per_img_nfe": 1000 * dt / n / used})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--nfe", type=int, default=10)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 peak ~{PEAK_FP32:.0f} GFLOP/s\n")
    print(f"{'recipe':<20} {'batch':>5} {'s/step':>8} {'img/s':>8} {'GFLOP/step':>11} {'GFLOP/s':>8} {'% peak':>7}")
    for name in sorted(recipes.RECIPES):
        b = bench_recipe(name, args.steps)
        print(f"{b['recipe']:<20} {b['batch']:>5} {b['s_per_step']:>8.3f} {b['img_per_s']:>8.0f} "
              f"{b['gflop_per_step']:>11.2f} {b['gflop_per_s']:>8.1f} {100 * b['gflop_per_s'] / PEAK_FP32:>6.0f}%")
    print(f"\nsampling unet_fmnist, {args.samples} class-conditional images, budget {args.nfe} NFE")
    print(f"{'sampler':<16} {'NFE':>4} {'bf16':>5} {'img/s':>8} {'ms/(img*NFE)':>13}")
    for s in bench_sampling(args.samples, args.nfe):
        print(f"{s['sampler']:<16} {s['nfe']:>4} {str(s['bf16']):>5} {s['img_per_s']:>8.1f} {s['ms_per_img_nfe']:>13.3f}")


if __name__ == "__main__":
    main()
