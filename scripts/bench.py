"""`make bench`: training throughput and achieved GFLOP/s of every zoo recipe, and sampling throughput
per sampler. A benchmark that prints numbers, not a test. Run it on an otherwise idle machine.

FLOPs of one training step (forward + backward) are counted with torch.utils.flop_counter; the
machine's measured matmul peak on these 2 cores is about 166 GFLOP/s in fp32 (400 in bf16).
"""
from __future__ import annotations

import argparse
import time

import torch

import diffrep_lib as dr
from diffrep_lib import costs, recipes, zoo
from diffrep_lib.models import build

PEAK_FP32 = 166.0


def bench_recipe(name: str, steps: int) -> dict:
    r = recipes.get(name)
    torch.manual_seed(0)
    x, y, sample_batch = zoo.training_data(r)
    xb = sample_batch(r.batch_size, None) if sample_batch else x[:r.batch_size]
    yb = None if sample_batch or y is None else y[:r.batch_size]
    b = costs.training_throughput(zoo.build_model(r, for_training=True), r, xb, yb, steps=steps)
    return {"recipe": name, "batch": r.batch_size, **b, "gflop_per_step": b["flops_per_step"] / 1e9,
            "gflop_per_s": b["flops_per_step"] / 1e9 / b["s_per_step"]}


def diffusers_unet(cfg):
    """diffusers' UNet2DModel as close to our UNetConfig as its blocks allow: the same widths per level,
    one ResNet per level on the way down, attention at the lowest level and in the middle, GroupNorm groups,
    scale-shift conditioning and a class table with a null row. (Its up path has layers_per_block + 1 = 2
    ResNets per level and it resamples with convolutions, so it does more work than ours.)"""
    from diffusers import UNet2DModel
    n = len(cfg.channels)
    return UNet2DModel(sample_size=28, in_channels=cfg.in_channels, out_channels=cfg.in_channels,
                       block_out_channels=cfg.channels, layers_per_block=1, norm_num_groups=cfg.groups,
                       down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
                       up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
                       attention_head_dim=cfg.channels[-1] // cfg.heads, resnet_time_scale_shift="scale_shift",
                       num_class_embeds=cfg.num_classes + 1)


class DiffusersAdapter(torch.nn.Module):
    """net(x, t, y) -> tensor, the contract of our backbones, around a diffusers UNet2DModel."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        self.null_label = unet.config.num_class_embeds - 1

    def forward(self, x, t, y=None):
        y = torch.full((len(x),), self.null_label) if y is None else y
        return self.unet(x, t, class_labels=y).sample


def bench_unet_vs_diffusers(steps: int) -> list[dict]:
    """Our U-Net and the matching diffusers UNet2DModel, one training step each in turn, in one process."""
    r = recipes.get("unet_fmnist")
    x, y, _ = zoo.training_data(r)
    xb, yb = x[:r.batch_size], y[:r.batch_size]
    torch.manual_seed(0)
    nets = {"ours (diffrep UNet)": build(r.model), "diffusers UNet2DModel": DiffusersAdapter(diffusers_unet(r.model))}
    rows = {name: [] for name in nets}
    for _ in range(3):                                     # alternate, so both see the same machine state
        for name, net in nets.items():
            rows[name].append(costs.training_throughput(net, r, xb, yb, steps=max(1, steps // 3), warmup=1))
    out = []
    for name, net in nets.items():
        best = min(rows[name], key=lambda b: b["s_per_step"])
        out.append({"model": name, "params": sum(p.numel() for p in net.parameters()), **best})
    return out


def bench_sampling(n: int, nfe: int) -> list[dict]:
    D = dr.denoisers.clip_x0(dr.zoo.denoiser("unet_fmnist", "quick"))
    raw = dr.zoo.denoiser("unet_fmnist", "quick")
    out = []
    for name in ("ddim", "ddpm", "heun", "dpmpp_2m", "euler_maruyama"):
        for bf16 in (False, True):
            sig = dr.sampling.sigma_grid(raw, dr.samplers.steps_for_nfe(name, nfe))
            t0 = time.perf_counter()
            dr.sampling.generate(D, n, sampler=name, sigmas=sig, cond=torch.arange(n) % 10, bf16=bf16, batch=n)
            dt = time.perf_counter() - t0
            used = dr.samplers.nfe(name, len(sig) - 1)
            out.append({"sampler": name, "nfe": used, "bf16": bf16, "img_per_s": n / dt,
                        "ms_per_img_nfe": 1000 * dt / n / used})
    return out


def bench_inference_batch(sizes=(16, 32, 128, 500), n: int = 300, nfe: int = 10) -> list[dict]:
    """Seconds to draw n classifier-free guided samples (unet_fmnist, scale 2, DPM-Solver++(2M) at nfe) by the
    sampler's batch size (CFG doubles the network's batch; a batch above n is one batch of all n), the weights'
    layout and the precision (bf16 only where the CPU computes it natively): what `runtime.inference_batch` and
    `runtime.for_inference` chose from. The faster of two runs counts."""
    D = dr.zoo.denoiser("unet_fmnist", "quick")
    G = dr.denoisers.clip_x0(dr.guidance.cfg(D, 2.0, D.net.null_label))
    sig = dr.sampling.sigma_grid(D, dr.samplers.steps_for_nfe("dpmpp_2m", nfe))
    out = []
    for bf16 in (False, True) if dr.precision.bf16_native("cpu") else (False,):
        for layout in (torch.contiguous_format, torch.channels_last):
            D.net.to(memory_format=layout)
            for b in sizes:
                best = float("inf")
                for _ in range(2):
                    t0 = time.perf_counter()
                    dr.sampling.generate(G, n, sampler="dpmpp_2m", sigmas=sig, cond=torch.arange(n) % 10,
                                         batch=b, bf16=bf16)
                    best = min(best, time.perf_counter() - t0)
                out.append({"layout": str(layout).split(".")[-1], "bf16": bf16, "batch": b, "s": best,
                            "img_nfe_per_s": 2 * n * nfe / best})
    return out


def bench_feature_batch(sizes=(32, 128, 512), n: int = 1024) -> list[dict]:
    """Seconds to read n test images' features at two timesteps and six blocks of unet_fmnist (Chapter 4's
    readout) by forward-pass batch, layout and precision: what `runtime.feature_batch` chose from. The faster of
    two runs counts."""
    net = dr.zoo.get("unet_fmnist", "quick")
    x = dr.data.fashion_mnist.tensors("test")[0][:n]
    layers = ["down.1", "down.2", "mid.2", "up.0", "up.1", "up.2"]
    out = []
    for bf16 in (False, True) if dr.precision.bf16_native("cpu") else (False,):
        for layout in (torch.contiguous_format, torch.channels_last):
            net.to(memory_format=layout)
            for b in sizes:
                best = float("inf")
                for _ in range(2):
                    t0 = time.perf_counter()
                    dr.framework.feature_vectors(net, x, [10, 200], layers, batch=b, bf16=bf16)
                    best = min(best, time.perf_counter() - t0)
                out.append({"layout": str(layout).split(".")[-1], "bf16": bf16, "batch": b, "s": best})
    return out


def bench_eval_batch(n: int = 12_000) -> list[dict]:
    """Seconds to embed n training images with the evaluation classifier (`metrics.features`, FID-FM) and the
    SimCLR encoder (`assignments.encoder_features`) by batch size, float32: what their batches were chosen from.
    The outputs do not depend on the batch (checked here). The faster of two runs counts."""
    x = dr.data.fashion_mnist.tensors("train")[0][:n]
    nets = {"classifier features": (dr.zoo.get("classifier_fmnist", "quick").features, (64, 256, 1000)),
            "SimCLR embeddings": (dr.encoders.load("simclr_fmnist", "quick").pooled, (128, 1000))}
    out = []
    with torch.no_grad():
        for name, (fn, sizes) in nets.items():
            first = None
            for b in sizes:
                best = float("inf")
                for _ in range(2):
                    t0 = time.perf_counter()
                    f = torch.cat([fn(x[i:i + b]) for i in range(0, n, b)])
                    best = min(best, time.perf_counter() - t0)
                first = f if first is None else first
                out.append({"net": name, "batch": b, "s": best, "same": torch.equal(f, first)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--nfe", type=int, default=10)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 peak ~{PEAK_FP32:.0f} GFLOP/s\n")
    print(f"{'recipe':<20} {'batch':>5} {'s/step':>8} {'img/s':>8} {'GFLOP/step':>11} {'GFLOP/s':>8} {'% peak':>7}")
    for name in sorted(set(recipes.SHIPPED) - recipes.RECORD_ONLY):
        b = bench_recipe(name, args.steps)
        print(f"{b['recipe']:<20} {b['batch']:>5} {b['s_per_step']:>8.3f} {b['img_per_s']:>8.0f} "
              f"{b['gflop_per_step']:>11.2f} {b['gflop_per_s']:>8.1f} {100 * b['gflop_per_s'] / PEAK_FP32:>6.0f}%")
    print(f"\nour U-Net against diffusers' UNet2DModel (unet_fmnist recipe, batch {recipes.get('unet_fmnist').batch_size})")
    print(f"{'model':<24} {'params':>9} {'s/step':>8} {'img/s':>8} {'GFLOP/step':>11} {'GFLOP/s':>8}")
    rows = bench_unet_vs_diffusers(args.steps)
    for b in rows:
        print(f"{b['model']:<24} {b['params']:>9,} {b['s_per_step']:>8.3f} {b['img_per_s']:>8.0f} "
              f"{b['flops_per_step'] / 1e9:>11.2f} {b['flops_per_step'] / 1e9 / b['s_per_step']:>8.1f}")
    print(f"step-time ratio diffusers / ours: {rows[1]['s_per_step'] / rows[0]['s_per_step']:.2f} "
          f"(FLOP ratio {rows[1]['flops_per_step'] / rows[0]['flops_per_step']:.2f})")
    print("\n300 CFG samples (unet_fmnist, DPM-Solver++(2M), 10 NFE) by batch size; the library reads networks "
          f"in batches of {dr.runtime.inference_batch('cpu')} on a CPU")
    for b in bench_inference_batch():
        print(f"  {b['layout']:<18} {'bf16' if b['bf16'] else 'fp32'} batch {b['batch']:>4}: {b['s']:>5.1f} s, "
              f"{b['img_nfe_per_s']:>5.0f} network images/s")
    print(f"\nreading 1,024 images' features (unet_fmnist, 2 timesteps x 6 blocks) by batch size; the library reads "
          f"features in batches of {dr.runtime.feature_batch('cpu')} on a CPU, weights "
          f"{'in the default layout (bf16)' if dr.precision.bf16_native('cpu') else 'channels-last (float32)'}")
    for b in bench_feature_batch():
        print(f"  {b['layout']:<18} {'bf16' if b['bf16'] else 'fp32'} batch {b['batch']:>4}: {b['s']:>5.1f} s")
    print("\nembedding 12,000 training images by batch size (float32): the classifier's features in batches of 256 "
          "(metrics.features), encoders' embeddings in the library's feature batch")
    for b in bench_eval_batch():
        print(f"  {b['net']:<20} batch {b['batch']:>4}: {b['s']:>5.1f} s, same output as the first: {b['same']}")
    print(f"\nsampling unet_fmnist, {args.samples} class-conditional images, budget {args.nfe} NFE")
    print(f"{'sampler':<16} {'NFE':>4} {'bf16':>5} {'img/s':>8} {'ms/(img*NFE)':>13}")
    for s in bench_sampling(args.samples, args.nfe):
        print(f"{s['sampler']:<16} {s['nfe']:>4} {str(s['bf16']):>5} {s['img_per_s']:>8.1f} {s['ms_per_img_nfe']:>13.3f}")


if __name__ == "__main__":
    main()
