"""Losses and the one training loop of the zoo (DESIGN.md §5; ch. 1).

Losses return a dict of per-sample terms; the weighting is one visible line in `train_step`.
The loop runs through Hugging Face `accelerate`, so the same code trains on a CPU, one GPU or several.
"""
from __future__ import annotations

import copy
import math
import os
import time

import torch
import torch.nn.functional as F

from . import forward_process, parameterisation, schedules, selfsup
from .models.embeddings import drop_labels

Tensor = torch.Tensor


def noised(x0: Tensor, abar: Tensor, prediction: str, generator=None, t: Tensor | None = None):
    """The forward process for one batch: t ~ U{0..T-1} (or the given t), eps ~ N(0, I),
    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. Returns (x_t, t, the parameterisation's target)."""
    n = x0.shape[0]
    if t is None:
        t = torch.randint(0, len(abar), (n,), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    x_t = forward_process.q_sample(x0, t, abar, eps)
    a = forward_process.per_sample(abar.to(x0.device)[t], x0)
    return x_t, t, parameterisation.target(prediction, x0, eps, a.sqrt(), (1 - a).sqrt())


def denoising_terms(net, x0: Tensor, y: Tensor | None, *, abar: Tensor, prediction: str,
                    p_uncond: float = 0.0, null: int | None = None, generator=None,
                    t: Tensor | None = None) -> dict[str, Tensor]:
    """DDPM's L_simple (survey Eq. 7) with the target of the network's parameterisation,
    ||target - net(x_t, t)||^2 averaged over pixels; labels are dropped to `null` with probability p_uncond."""
    x_t, t, tgt = noised(x0, abar, prediction, generator, t)
    if y is not None and null is not None and p_uncond > 0:
        y = drop_labels(y, p_uncond, null, generator)
    out = net(x_t, t, y) if y is not None else net(x_t, t)
    return {"denoise": (out - tgt).pow(2).flatten(1).mean(1)}


def aligned_terms(net, x0: Tensor, y: Tensor | None, *, abar: Tensor, prediction: str, p_uncond: float = 0.0,
                  null: int | None = None, generator=None, **_) -> dict[str, Tensor]:
    """REPA (ch. 12): L_simple plus the alignment term, 1 - cosine between the projected hidden tokens after block
    k and the frozen teacher's tokens of the *clean* image (`net` is a models.Aligned)."""
    from . import repa
    from .models.auxiliary import match_grid

    x_t, t, tgt = noised(x0, abar, prediction, generator)
    if y is not None and null is not None and p_uncond > 0:
        y = drop_labels(y, p_uncond, null, generator)
    target = match_grid(net.teacher.to(x0.device).tokens(x0), net.net.grid ** 2)
    out, align = repa.repa_terms(net.net, net.projector, target, x_t, t, y, net.depth)
    return {"denoise": (out - tgt).pow(2).flatten(1).mean(1), "align": align}


def online_cluster_terms(net, x0: Tensor, y=None, *, abar: Tensor, prediction: str, p_uncond: float = 0.0,
                         null: int | None = None, generator=None, **_) -> dict[str, Tensor]:
    """Online guidance (ch. 9): the batch is assigned to the prototypes by Sinkhorn-Knopp on the frozen teacher's
    features, those ids condition the denoiser (with condition dropout), and the prototypes learn to predict them
    (`net` is a models.SelfLabelled; human labels are never used)."""
    ids, cluster_loss = net.clusters(net.teacher.to(x0.device).pooled(x0))
    terms = denoising_terms(net.net, x0, ids, abar=abar, prediction=prediction, p_uncond=p_uncond, null=null,
                            generator=generator)
    return {**terms, "cluster": cluster_loss}


def classification_terms(net, x: Tensor, y: Tensor, **_) -> dict[str, Tensor]:
    """Cross-entropy of a classifier on clean images, per sample."""
    return {"ce": F.cross_entropy(net(x), y, reduction="none")}


def noisy_classification_terms(net, x0: Tensor, y: Tensor, *, abar: Tensor, generator=None,
                               t: Tensor | None = None, **_) -> dict[str, Tensor]:
    """Cross-entropy of a noise-aware classifier p(y | x_t, t) on images noised at t ~ U{0..T-1}
    (Dhariwal & Nichol 2021, §4), per sample."""
    if t is None:
        t = torch.randint(0, len(abar), (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    x_t = forward_process.q_sample(x0, t, abar, eps)
    return {"ce": F.cross_entropy(net(x_t, t), y, reduction="none")}


def contrastive_terms(net, x: Tensor, y=None, *, generator=None, temperature: float = 0.2, **_) -> dict[str, Tensor]:
    """SimCLR: two random views of each image, pooled encoder embeddings through the projection head, NT-Xent
    per sample (labels unused)."""
    v1, v2 = selfsup.augment(x, generator), selfsup.augment(x, generator)
    z = net.head(net(torch.cat([v1, v2])).mean(1))
    return {"nt_xent": selfsup.nt_xent(*z.chunk(2), temperature)}


@torch.no_grad()
def ema_update(ema, model, step: int, decay: float) -> None:
    """Exponential moving average with warm-up, decay_n = min(decay, (1 + n) / (10 + n)): a plain 0.999
    over a few thousand steps would leave a visible share of the random initialisation in the average."""
    d = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - d)  # one launch
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def progress_enabled() -> bool:
    """Progress bars on terminals and in Jupyter, none in executed book pages (DIFFREP_PROGRESS=0)."""
    return os.environ.get("DIFFREP_PROGRESS", "1") != "0"


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix work natively (AVX512-BF16 or AMX); elsewhere bf16 autocast would be
    emulated and slower than float32, so recipes that ask for it train in float32 there."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def precision(recipe, device) -> str:
    """How the recipe trains on `device`: 'bf16 autocast' on GPUs, and on CPUs with bf16 instructions when the
    recipe asks for it (recipes.Recipe.cpu_bf16); 'fp32' otherwise. The weights and the optimiser stay float32."""
    kind = torch.device(device).type
    bf16 = kind == "cuda" or (kind == "cpu" and getattr(recipe, "cpu_bf16", False) and cpu_has_bf16())
    return "bf16 autocast" if bf16 else "fp32"


def autocast(recipe, device):
    """The autocast context of `precision(recipe, device)` (a disabled one for fp32)."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=precision(recipe, device) != "fp32")


def lr_at(step: int, lr: float, warmup: int) -> float:
    return lr * min(1.0, (step + 1) / warmup) if warmup else lr


def term_weights(recipe) -> dict[str, float]:
    """The weight of each loss term: 1, except REPA's alignment term, weighted by lambda."""
    return {"align": recipe.align_weight}


def objective(recipe, net, xb: Tensor, yb: Tensor | None, *, abar: Tensor, null=None, generator=None,
              terms_out: dict | None = None) -> Tensor:
    """The recipe's training loss on one batch: the weighted sum of its task's terms (batch means), which are also
    written to `terms_out` when given (as detached tensors: reading them waits for the device)."""
    terms = TASKS[recipe.task](net, xb, yb, abar=abar, prediction=recipe.prediction, p_uncond=recipe.p_uncond,
                               null=null, generator=generator)
    means = {k: v.mean() for k, v in terms.items()}
    if terms_out is not None:
        terms_out.update({k: v.detach() for k, v in means.items()})
    weights = term_weights(recipe)
    return sum(weights.get(k, 1.0) * v for k, v in means.items())


def train(recipe, net, x: Tensor, y: Tensor | None, *, device: str | None = None, log_every: int = 50,
          sample_batch=None, checkpoint=None):
    """Train `net` on (x, y) by the recipe; returns (EMA or final module on CPU, history dict).

    `sample_batch(n, generator)` replaces indexing into x for data that is drawn afresh (2-D toys).
    `checkpoint(step, model) -> dict` is called every `recipe.curve_every` steps with the EMA (or current) model
    in eval mode; its results form history['curve'] (FID-FM against steps, ch. 12).
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    accel = Accelerator(cpu=(device == "cpu"))
    if accel.device.type == "cuda":                 # TF32 for what autocast leaves in float32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(recipe.seed)
    gen = torch.Generator(device="cpu").manual_seed(recipe.seed * 1000 + accel.process_index)
    net = net.to(accel.device)                      # before the optimiser: a fused one needs its parameters there
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                            fused=accel.device.type == "cuda")          # one kernel for all parameters on a GPU
    net, opt = accel.prepare(net, opt)
    ema = copy.deepcopy(accel.unwrap_model(net)).eval().requires_grad_(False) if recipe.ema_decay else None
    abar = schedules.alphas_cumprod(schedules.SCHEDULES[recipe.schedule](recipe.T)).to(accel.device)
    null = getattr(accel.unwrap_model(net), "null_label", None)
    if x is not None:
        x = x.to(accel.device)
        y = y.to(accel.device) if y is not None else None
    batches = None
    if x is not None and sample_batch is None and accel.device.type != "cpu":
        # on a GPU every batch's indices are drawn up front (the same draws as the CPU's, in the same order) and
        # copied once: a copy from pageable memory each step would make the host wait for the device each step
        batches = torch.stack([torch.randint(0, len(x), (recipe.batch_size,), generator=gen)
                               for _ in range(recipe.steps)]).to(accel.device)
    history = {"step": [], "loss": [], "terms": {}}
    running, running_terms, t0, eval_s = [], {}, time.time(), 0.0
    if checkpoint is not None and recipe.curve_every:
        history["curve"] = []
    bar = tqdm(range(recipe.steps), desc=recipe.name, disable=not (progress_enabled() and accel.is_main_process),
               position=int(os.environ.get("DIFFREP_BAR_POSITION", 0)))    # make zoo's workers: one line each
    net.train()
    for step in bar:
        if sample_batch is not None:
            xb, yb = sample_batch(recipe.batch_size, gen).to(accel.device), None
        else:
            idx = batches[step] if batches is not None else torch.randint(0, len(x), (recipe.batch_size,),
                                                                          generator=gen)
            xb, yb = x[idx], (y[idx] if y is not None else None)
        gen_dev = None if accel.device.type != "cpu" else gen
        terms = {}
        with autocast(recipe, accel.device):
            loss = objective(recipe, net, xb, yb, abar=abar, null=null, generator=gen_dev, terms_out=terms)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe.lr, recipe.warmup)
        opt.zero_grad(set_to_none=True)
        accel.backward(loss)
        if recipe.grad_clip:
            accel.clip_grad_norm_(net.parameters(), recipe.grad_clip)
        opt.step()
        if ema is not None:
            ema_update(ema, accel.unwrap_model(net), step, recipe.ema_decay)
        # losses stay on the device until a log step: reading one every step would stall a GPU on each step
        running.append(loss.detach())
        for k, v in terms.items():
            running_terms.setdefault(k, []).append(v)
        if (step + 1) % log_every == 0 or step == recipe.steps - 1:
            mean = torch.stack(running).float().mean().item()
            if not math.isfinite(mean):
                raise FloatingPointError(f"{recipe.name}: the loss became {mean} within steps "
                                         f"{step + 2 - len(running)}-{step + 1}")
            history["step"].append(step + 1)
            history["loss"].append(mean)
            for k, v in running_terms.items():
                history["terms"].setdefault(k, []).append(torch.stack(v).float().mean().item())
            bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
            running, running_terms = [], {}
        if "curve" in history and (step + 1) % recipe.curve_every == 0:
            tic = time.time()
            current = ema if ema is not None else accel.unwrap_model(net)
            current.eval()
            history["curve"].append({"step": step + 1, **checkpoint(step + 1, current)})
            net.train()
            eval_s += time.time() - tic
    history["wall_s"] = time.time() - t0 - eval_s        # training time; the curve's evaluations apart
    history["curve_s"] = eval_s
    history["device"] = str(accel.device)
    history["precision"] = precision(recipe, accel.device)
    model = ema if ema is not None else accel.unwrap_model(net)
    return model.cpu().eval(), history


def mean_loss(history: dict, start: float = 0, stop: float = float("inf")) -> float:
    """Mean of a logged loss curve {'step': [...], 'loss': [...]} over the points with start < step <= stop,
    e.g. the second half of a run, past warm-up and the first fast fall (ch. 2's ablations)."""
    window = [loss for step, loss in zip(history["step"], history["loss"]) if start < step <= stop]
    if not window:
        raise ValueError(f"no logged loss in steps ({start}, {stop}]; the curve has steps {history['step']}")
    return sum(window) / len(window)


TASKS = {"denoise": denoising_terms, "classify": classification_terms, "classify_noisy": noisy_classification_terms,
         "contrastive": contrastive_terms, "denoise_aligned": aligned_terms, "denoise_online": online_cluster_terms}


@torch.no_grad()
def loss_by_timestep(net, x0: Tensor, y: Tensor | None, *, abar: Tensor, prediction: str, ts, seed: int = 0) -> Tensor:
    """L_simple's per-step term E||target - net(x_t, t)||^2 at each timestep in `ts` (ch. 1), (len(ts),)."""
    g = torch.Generator().manual_seed(seed)
    n = len(x0)
    return torch.stack([denoising_terms(net, x0, y, abar=abar, prediction=prediction, generator=g,
                                        t=torch.full((n,), int(t)))["denoise"].mean() for t in ts])
