"""The one training loop of the zoo (ch. 1; docs/ARCHITECTURE.md, "The zoo").

The loop knows no method: the recipe's task names a `registry.Method`, whose `terms` give the per-sample losses of
a batch and whose `weights` weigh them (`objective`). It runs through Hugging Face `accelerate`, so the same code
trains on a CPU, one GPU or several.
"""
from __future__ import annotations

import copy
import math
import os
import time

import torch

from ..core.precision import bf16_autocast, cpu_has_bf16
from ..support.runtime import progress_enabled
from . import recipes, registry

Tensor = torch.Tensor


@torch.no_grad()
def ema_update(ema, model, step: int, decay: float) -> None:
    """Exponential moving average with warm-up, decay_n = min(decay, (1 + n) / (10 + n)): a plain 0.999
    over a few thousand steps would leave a visible share of the random initialisation in the average."""
    d = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - d)  # one launch
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def precision(recipe, device) -> str:
    """How the recipe trains on `device`: 'bf16 autocast' on GPUs, and on CPUs with bf16 instructions when the
    recipe asks for it (recipes.Recipe.cpu_bf16); 'fp32' otherwise. The weights and the optimiser stay float32."""
    kind = torch.device(device).type
    bf16 = kind == "cuda" or (kind == "cpu" and getattr(recipe, "cpu_bf16", False) and cpu_has_bf16())
    return "bf16 autocast" if bf16 else "fp32"


def autocast(recipe, device):
    """The autocast context of `precision(recipe, device)` (a disabled one for fp32)."""
    return bf16_autocast(device, precision(recipe, device) != "fp32")


def lr_at(step: int, lr: float, warmup: int) -> float:
    return lr * min(1.0, (step + 1) / warmup) if warmup else lr


def objective(recipe, net, xb: Tensor, yb: Tensor | None, *, abar: Tensor, null=None, generator=None,
              terms_out: dict | None = None) -> Tensor:
    """The recipe's training loss on one batch: its method's terms (batch means), weighted by the method's weights
    (a term without a weight counts once). The means are also written to `terms_out` when given (as detached
    tensors: reading them waits for the device)."""
    method = registry.method(recipe.task)
    terms = method.terms(net, xb, yb, recipe=recipe, abar=abar, null=null, generator=generator)
    means = {k: v.mean() for k, v in terms.items()}
    if terms_out is not None:
        terms_out.update({k: v.detach() for k, v in means.items()})
    weights = method.weights(recipe)
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
    abar = recipes.abar(recipe).to(accel.device)
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
