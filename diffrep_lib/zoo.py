"""The model zoo: train once, share everywhere, ship the `quick` weights (DESIGN.md §5).

    dr.zoo.get("unet_fmnist", profile)        -> the trained network (EMA weights, eval mode, CPU)
    dr.zoo.denoiser("unet_fmnist", profile)   -> the same network behind the denoiser contract

`quick`, seed 0: weights shipped in `diffrep_lib/weights/` with a `manifest.json` entry (recipe hash,
config, seed, steps, wall time, device, date, final metrics, sha256, golden output), written by
`make zoo` (`make zoo-extras` for the extras, recipes.EXTRAS). Anything else (`full`, other seeds, or
DIFFREP_RETRAIN=1) is trained on first use into DIFFREP_CACHE (default ~/.cache/diffrep), keyed by the recipe
hash. Files are safetensors, written to a temporary name and renamed, so a crash never leaves a half-written
checkpoint; a corrupt file is reported and retrained.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from . import checkpoints, data, denoisers, forward_process, schedules, training
from .golden import golden_output
from .models import build
from .profile import resolve
from .recipes import EXTRAS, RECORD_ONLY, SHIPPED, Recipe, get as recipe, recipe_hash

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


class ZooError(RuntimeError):
    """A shipped weight file does not match its manifest or recipe; the message says what to run."""


def cache_dir() -> Path:
    return Path(os.environ.get("DIFFREP_CACHE", Path.home() / ".cache" / "diffrep"))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def atomic_save(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    """safetensors to a temporary file in the same folder, then an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------- training

def _training_data(r: Recipe):
    if r.data.startswith("toy2d/"):
        toy = r.data.split("/", 1)[1]
        return None, None, (lambda n, g: data.toy2d.sample(toy, n, generator=g))
    x, y = data.training_tensors(r.data)
    if r.condition == "kmeans":             # self-labelled: the teacher's clusters replace the labels
        from . import assignments
        y = assignments.kmeans_ids(r.teacher, r.profile, r.clusters, r.seed,
                                   random_init=r.teacher_init == "random")["ids"]
    elif r.condition == "online":           # the ids are drawn in every training step
        y = None
    elif r.condition != "labels":
        raise ValueError(f"{r.name}: unknown condition {r.condition!r}; choose 'labels', 'kmeans' or 'online'")
    return x, (y if r.task.startswith("classify") or getattr(r.model, "num_classes", None) else None), None


def build_model(r: Recipe, *, teacher: bool = False):
    """The module of recipe r as the zoo stores it: the bare network, or for online guidance the network with its
    cluster prototypes (models.SelfLabelled). teacher=True builds what training needs, the frozen teacher
    encoder included (and REPA's projector: models.Aligned)."""
    from . import assignments, encoders, repa
    from .models.auxiliary import Aligned, SelfLabelled

    net = build(r.model)
    enc = None
    if r.teacher and teacher:
        enc = encoders.load(r.teacher, r.profile, random_init=r.teacher_init == "random")
    if r.condition == "online":
        dim = recipe(r.teacher, r.profile).model.widths[-1]
        return SelfLabelled(net, assignments.OnlineClusters(dim, r.clusters), enc)
    if r.align_depth and teacher:
        return Aligned(net, repa.Projector(r.model.dim, enc.dim, r.align_hidden), r.align_depth, enc)
    return net


@torch.no_grad()
def evaluate(model, r: Recipe) -> dict:
    """Held-out numbers stored with the weights: test accuracy, or a fixed-noise test denoising loss."""
    if r.data.startswith("toy2d/"):
        x, y = data.toy2d.sample(r.data.split("/", 1)[1], 4096, generator=torch.Generator().manual_seed(99)), None
    elif r.data == "toy_scenes":
        x, y = data.toy_scenes.split("test").images[:1000], None
    else:
        x, y = data.fashion_mnist.tensors("test")
        x, y = x[:2000], y[:2000]
    if r.task == "classify":
        return {"test_accuracy": round((model(x).argmax(1) == y).float().mean().item(), 4)}
    if r.task == "contrastive":                 # the encoder's embeddings, probed on 5,000 labelled training images
        from . import probes
        xt, yt = data.fashion_mnist.tensors("train")
        xt, yt = xt[:5000], yt[:5000]
        emb = lambda images: torch.cat([model.pooled(images[i:i + 500]) for i in range(0, len(images), 500)])
        ft, fe = emb(xt), emb(x)
        return {"linear_probe": round(probes.linear_probe(ft, yt, fe, y), 4),
                "knn": round(probes.knn_accuracy(ft, yt, fe, y), 4)}
    abar = schedules.alphas_cumprod(schedules.SCHEDULES[r.schedule](r.T))
    if r.task == "classify_noisy":
        g = torch.Generator().manual_seed(99)
        acc = {}
        for t in (0, 250, 500, 750):
            tt = torch.full((len(x),), t)
            x_t = forward_process.q_sample(x, tt, abar, torch.randn(x.shape, generator=g))
            acc[f"test_accuracy_t{t}"] = round((model(x_t, tt).argmax(1) == y).float().mean().item(), 4)
        return acc
    g = torch.Generator().manual_seed(99)
    yy = y if getattr(r.model, "num_classes", None) else None
    if yy is not None and r.condition != "labels":     # cluster-conditioned: scored unconditionally (null id)
        yy = torch.full_like(y, model.null_label)
    terms = training.denoising_terms(model, x, yy, abar=abar, prediction=r.prediction, generator=g)
    return {"test_denoise_loss": round(terms["denoise"].mean().item(), 5)}


def checkpoint_path(r: Recipe) -> Path:
    """Where `train` keeps the weights it has just trained, before evaluating them."""
    return cache_dir() / "zoo" / "trained" / f"{r.name}-s{r.seed}-{recipe_hash(r)[:16]}.safetensors"


def train(r: Recipe, device: str | None = None):
    """Train recipe r from scratch: returns (model, record) with the record that the manifest stores. The trained
    weights are saved (atomically) before they are evaluated, so a failure after training loses no work: the next
    call with the same recipe picks them up instead of training again."""
    ckpt = checkpoint_path(r)
    if ckpt.exists():                   # trained before, but evaluating or shipping failed: keep that work
        model = _load_into(r, ckpt)
        with safe_open(str(ckpt), "pt") as f:
            hist = json.loads(f.metadata()["history"])
    else:
        x, y, sample_batch = _training_data(r)
        torch.manual_seed(r.seed)
        net = build_model(r, teacher=True)
        model, hist = training.train(r, net, x, y, device=device, sample_batch=sample_batch,
                                     checkpoint=checkpoints.curve_point(r) if r.curve_every else None)
        model = model.export() if hasattr(model, "export") else model
        atomic_save(model.state_dict(), ckpt, metadata={"history": json.dumps(hist)})
    rec = {
        "recipe_hash": recipe_hash(r),
        "config": json.loads(json.dumps(dataclasses.asdict(r), default=str)),
        "seed": r.seed, "steps": r.steps, "wall_s": round(hist["wall_s"], 1), "device": hist["device"],
        **({"precision": hist["precision"]} if hist.get("precision", "fp32") != "fp32" else {}),
        "host": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "date": datetime.date.today().isoformat(),
        "metrics": {"final_train_loss": round(sum(hist["loss"][-2:]) / len(hist["loss"][-2:]), 5),
                    **evaluate(model, r)},
        "loss_curve": {"step": hist["step"], "loss": [round(v, 5) for v in hist["loss"]],
                       **({"terms": {k: [round(v, 5) for v in vs] for k, vs in hist["terms"].items()}}
                          if len(hist.get("terms", {})) > 1 else {})},
        "golden": golden_output(model, r),
    }
    if "curve" in hist:
        rec["curve"], rec["curve_s"] = hist["curve"], round(hist["curve_s"], 1)   # wall_s leaves the curve out
    return model, rec


# ---------------------------------------------------------------------------------------------- loading

def _load_into(r: Recipe, path: Path):
    model = build_model(r)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def read_manifest() -> dict:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"format": 1, "entries": {}}


def retrain_command(name: str) -> str:
    """The command that (re)trains the shipped recipe `name`: `make zoo`, or `make zoo-extras` for an extra."""
    return "make zoo-extras" if name in EXTRAS else "make zoo"


def _shipped_entry(r: Recipe) -> dict:
    entry = read_manifest()["entries"].get(r.name)
    if entry is None:
        raise ZooError(f"no shipped record for {r.name!r}: run `{retrain_command(r.name)}`")
    if entry["recipe_hash"] != recipe_hash(r):
        raise ZooError(f"recipe {r.name} changed since it was trained: run `{retrain_command(r.name)}`")
    return entry


def _shipped(r: Recipe):
    entry = _shipped_entry(r)
    path = WEIGHTS_DIR / f"{r.name}.safetensors"
    if not path.exists():
        raise ZooError(f"no shipped weights for {r.name!r}: run `{retrain_command(r.name)}`")
    if sha256(path) != entry["sha256"]:
        raise ZooError(f"{path.name} does not match its manifest sha256 (altered or corrupt): "
                       f"run `{retrain_command(r.name)}`")
    return _load_into(r, path)


def cached_path(r: Recipe, profile: str) -> Path:
    return cache_dir() / "zoo" / f"{r.name}-{profile}-s{r.seed}-{recipe_hash(r)[:16]}.safetensors"


def _from_cache(r: Recipe, profile: str, device: str | None):
    path = cached_path(r, profile)
    if path.exists():
        try:
            return _load_into(r, path)
        except Exception as err:  # truncated or foreign file: say so, then retrain over it
            warnings.warn(f"cached weights {path} are unreadable ({type(err).__name__}: {err}); retraining")
    model, rec = train(r, device=device)
    atomic_save(model.state_dict(), path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(rec, indent=1))
    return model


def get(name: str, profile: str = "auto", seed: int = 0, device: str | None = None):
    """The trained model `name` for a profile and training seed (eval mode, on the CPU)."""
    profile = resolve(profile)
    r = recipe(name, profile, seed)
    if _use_shipped(name, profile, seed) and name not in RECORD_ONLY:
        return _shipped(r)
    return _from_cache(r, profile, device)


def _use_shipped(name: str, profile: str, seed: int) -> bool:
    return profile == "quick" and seed == 0 and os.environ.get("DIFFREP_RETRAIN") != "1"


def record(name: str, profile: str = "auto", seed: int = 0, device: str | None = None) -> dict:
    """The training record of `name`: steps, wall time, device, loss curve and held-out metrics.

    The shipped quick/seed-0 record comes from the manifest (also for RECORD_ONLY recipes, whose weights
    are not shipped); any other is read from the cache, training the model first if needed."""
    profile = resolve(profile)
    r = recipe(name, profile, seed)
    if _use_shipped(name, profile, seed):
        return _shipped_entry(r)
    path = cached_path(r, profile).with_suffix(".json")
    if not path.exists():
        cached_path(r, profile).unlink(missing_ok=True)     # weights without their record: train afresh
        _from_cache(r, profile, device)
    return json.loads(path.read_text())


def untrained(name: str, profile: str = "auto", seed: int = 0, *, zero_layers: str = "random"):
    """The network of recipe `name` before any training step: the random-initialisation control of every
    representation claim.

    zero_layers="keep": exactly the weights that training with this seed starts from. Our backbones start some
    layers at zero (the U-Net's last conv of each residual block, the DiT's adaLN-Zero gates), which makes every
    block the identity, so such a network computes an affine function of its input. zero_layers="random" (the
    default) draws those layers with PyTorch's default initialisation instead, so that every block computes a
    random nonlinear function: the stronger control, "this architecture with random weights"."""
    if zero_layers not in ("random", "keep"):
        raise ValueError(f"zero_layers must be 'random' or 'keep', got {zero_layers!r}")
    r = recipe(name, resolve(profile), seed)
    torch.manual_seed(r.seed)
    net = build_model(r)
    if zero_layers == "random":
        for m in net.modules():
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() > 1 and not w.any() and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return net.eval()


def denoiser(name: str, profile: str = "auto", seed: int = 0, device: str | None = None):
    """The zoo network `name` behind the denoiser contract D(x, sigma, cond) -> x0_hat."""
    r = recipe(name, resolve(profile), seed)
    abar = schedules.alphas_cumprod(schedules.SCHEDULES[r.schedule](r.T))
    return denoisers.VPDenoiser(get(name, profile, seed, device), abar, r.prediction).eval()


def model_id(name: str, profile: str = "auto", seed: int = 0) -> str:
    """A short identity of the weights `get` returns, for memoisation keys: the recipe's hash, and for shipped
    weights also their sha256 (weights re-shipped from the same recipe, e.g. on another machine, are new weights)."""
    profile = resolve(profile)
    ident = f"{name}-{profile}-s{seed}-{recipe_hash(recipe(name, profile, seed))[:16]}"
    if _use_shipped(name, profile, seed) and name not in RECORD_ONLY:
        ident += "-" + read_manifest()["entries"].get(name, {}).get("sha256", "unshipped")[:8]
    return ident


# ---------------------------------------------------------------------------------------- manifest

def verify(names=None) -> list[str]:
    """Check every shipped entry: recipe hash, sha256 and golden output. Returns the problems found."""
    problems = []
    entries = read_manifest()["entries"]
    for name in names or SHIPPED:
        r = recipe(name, "quick", 0)
        entry = entries.get(name)
        if entry is None:
            problems.append(f"{name}: no manifest entry: run `{retrain_command(name)}`")
            continue
        if name in RECORD_ONLY:
            if entry["recipe_hash"] != recipe_hash(r):
                problems.append(f"recipe {name} changed since it was trained: run `{retrain_command(name)}`")
            continue
        try:
            model = _shipped(r)
        except ZooError as err:
            problems.append(str(err))
            continue
        got, want = torch.tensor(golden_output(model, r)), torch.tensor(entry["golden"])
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            problems.append(f"{name}: today's model code does not reproduce the golden output "
                            f"(max difference {(got - want).abs().max():.2e}): a refactor changed behaviour; "
                            f"fix the code, or run `{retrain_command(name)}` if the change is intended")
    return problems


def stale(names=None) -> list[str]:
    """Recipes whose shipped weights are missing or were trained from another recipe."""
    entries = read_manifest()["entries"]
    out = []
    for name in names or SHIPPED:
        e = entries.get(name)
        if e is None or e["recipe_hash"] != recipe_hash(recipe(name, "quick", 0)) \
                or (name not in RECORD_ONLY and not (WEIGHTS_DIR / f"{name}.safetensors").exists()):
            out.append(name)
    return out


# The extras' weights are shipped in float16, half the bytes: the committed weights must stay within 30 MB
# (DESIGN.md), and the core recipes' float32 files already take 28. The golden output is the half-precision
# weights' (computed in float32, as they are used); the record's metrics are the float32 model's.
HALF = EXTRAS - RECORD_ONLY


def ship(name: str) -> dict:
    """Train the quick recipe `name` on the CPU and write its weights (unless RECORD_ONLY) and manifest entry."""
    r = recipe(name, "quick", 0)
    model, rec = train(r, device="cpu")
    if name not in RECORD_ONLY:
        path = WEIGHTS_DIR / f"{name}.safetensors"
        state = model.state_dict()
        if name in HALF:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        atomic_save(state, path)
        if name in HALF:
            rec["golden"], rec["weights_dtype"] = golden_output(_load_into(r, path), r), "float16"
        rec["sha256"] = sha256(path)
        rec["bytes"] = path.stat().st_size
    with _manifest_lock():              # make zoo's workers ship in parallel: one read-modify-write at a time
        manifest = read_manifest()
        manifest["entries"][name] = rec
        atomic_write_text(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return rec


@contextlib.contextmanager
def _manifest_lock():
    """An exclusive lock on the manifest between processes (POSIX; elsewhere make zoo runs one worker)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    with open(MANIFEST.parent / ".manifest.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
