"""Reading representations out of zoo models: the experiments of chapter 4, by name and memoised (survey §3.1).

Each function takes names (zoo model, profile, control, seed), not tensors, so that its result can be memoised on
disk and the chapter's second execution (nbval) costs seconds. `control` is what the features come from:

- "trained": the zoo model's weights;
- "random":  the same architecture with random weights (`zoo.load(..., init="random")`, every layer random);
- "pixels":  no network at all, the image itself (where it applies).

    grid = ddae_grid("unet_fmnist", "quick", "trained", ts=(0, 10, 50), layers=["up.0", "up.1"], sizes=(2000, 1000))
    seg = segmentation("quick", "trained", ts=(10, 50, 150), labels=(5, 20, 100), n_eval=300)
"""
from __future__ import annotations

import torch

from ..errors import InputError, bad
from .. import zoo
from ..data import fashion_mnist, toy_scenes
from ..readout import framework as fw
from ..readout import probes
from ..support import memo

CONTROLS = ("trained", "random", "pixels")
SCENE_MODEL = "unet_toyscenes"
SEG_LAYERS = ("up.0", "up.1", "up.2")           # DDPM-Seg reads the decoder
DIFT_LAYERS = ("down.1", "mid.2", "up.0", "up.1", "up.2")   # correspondence: encoder, bottleneck and decoder
PCK_ALPHA = 0.1                                 # PCK@0.1: within 10% of the image size
MIX_LR = 3e-2                                   # Adam step of the hyperfeature mixing logits
BF16 = True                                     # networks in bfloat16 autocast: ~2x faster on a CPU, features fp32


def network(model: str, profile: str, control: str):
    """The network whose activations are read: the trained zoo model or its random-weight control."""
    if control not in zoo.INITS:
        raise bad(InputError, "control", control, f"choose one of {zoo.INITS} for a network", "unknown control")
    return zoo.load(model, profile, init=control)


def _deps(model: str, profile: str, control: str) -> tuple:
    if control not in CONTROLS:
        raise bad(InputError, "control", control, f"choose one of {CONTROLS}", "unknown control")
    return (control,) if control == "pixels" else (zoo.model_id(model, profile, init=control),)


def _extras(net) -> int:
    return getattr(net, "extras", 0)


# ------------------------------------------------------------------------------------------------ DDAE

def _train_order(seed: int) -> torch.Tensor:
    return torch.randperm(len(fashion_mnist.tensors("train")[0]), generator=torch.Generator().manual_seed(seed))


def probe_split(sizes: tuple, seed: int):
    """The probes' images: a seeded subset of sizes[0] training images and the first sizes[1] test images,
    as (x, y, x_test, y_test)."""
    x, y = fashion_mnist.tensors("train")
    xt, yt = fashion_mnist.tensors("test")
    idx = _train_order(seed)[:sizes[0]]
    return x[idx], y[idx], xt[:sizes[1]], yt[:sizes[1]]


def validation_split(sizes: tuple, seed: int):
    """The images that choose the (t, block) cell: sizes[1] training images disjoint from probe_split's, as
    (x_val, y_val). Test images are never used for a choice."""
    x, y = fashion_mnist.tensors("train")
    idx = _train_order(seed)[sizes[0]:sizes[0] + sizes[1]]
    return x[idx], y[idx]


def _ddae_grid(model, profile, control, ts, layers, sizes, seed):
    x, y, xt, yt = probe_split(sizes, seed)
    xv, yv = validation_split(sizes, seed)
    if control == "pixels":
        tr, va, te = ({"pixels": a.flatten(1)} for a in (x, xv, xt))
        table = lambda g: torch.tensor([[g["pixels"]]])
    else:
        net = network(model, profile, control)
        vecs = fw.feature_vectors(net, torch.cat([x, xv, xt]), ts, layers, extras=_extras(net), seed=seed,
                                  bf16=BF16)
        cut = (0, len(x), len(x) + len(xv), len(x) + len(xv) + len(xt))
        tr, va, te = ({k: v[a:b] for k, v in vecs.items()} for a, b in zip(cut, cut[1:]))
        table = lambda g: fw.as_table(g, ts, layers)
    out = {}
    for probe in ("linear", "knn"):       # Eq. 16 on the validation images; the chosen cell scored on test
        scores = fw.probe_scores(tr, y, {"val": (va, yv), "test": (te, yt)}, probe)   # one fit per cell
        (chosen, val), test = fw.grid_search(scores["val"].__getitem__, list(tr)), scores["test"]
        out.update({probe: table(test), f"val_{probe}": table(val), f"{probe}_cell": chosen, f"{probe}_test": test})
    best = out["linear_cell"]
    few, few_std = probes.few_label_probe(tr[best], y, te[best], yt)
    return {**{k: v for k, v in out.items() if not k.endswith("_test")}, "best": best,
            "best_linear": out["linear_test"][best], "knn_at_best": out["knn_test"][best],
            "best_knn": out["knn_test"][out["knn_cell"]], "few_label": few, "few_label_std": few_std}


def ddae_grid(model: str, profile: str, control: str, *, ts, layers, sizes: tuple, seed: int = 0) -> dict:
    """DDAE's probe grid (Eq. 16 over t x blocks) on Fashion-MNIST: linear and k-NN accuracy of 2x2-pooled
    features for every (t, layer), on the test images ('linear', 'knn') and on validation images ('val_linear',
    'val_knn'), each a (len(ts), len(layers)) tensor. The cells are chosen on validation: 'best' (= 'linear_cell')
    by the linear probe, 'knn_cell' by k-NN; their test accuracies are 'best_linear', 'knn_at_best' (k-NN at
    'best') and 'best_knn' (k-NN at 'knn_cell'), with the few-label (10 per class) accuracy at 'best'.
    sizes = (training, test) images, and as many validation images as test images, drawn from the training split
    disjoint from the probe's (`validation_split`); the subsets and the noise come from `seed`. control 'pixels'
    probes the raw images (1x1 tables)."""
    return memo.cached(_ddae_grid, model, profile, control, tuple(ts), tuple(layers), tuple(sizes), seed,
                       deps=_deps(model, profile, control))


def _cell_probe(model, profile, control, cell, sizes, seed):
    t, layer = fw.split_cell(cell)
    x, y, xt, yt = probe_split(sizes, seed)
    net = network(model, profile, control)
    vec = fw.feature_vectors(net, torch.cat([x, xt]), [t], [layer], extras=_extras(net), seed=seed,
                             bf16=BF16)[cell]
    tr, te = vec[:len(x)], vec[len(x):]
    return {"linear": probes.linear_probe(tr, y, te, yt), "knn": probes.knn_accuracy(tr, y, te, yt),
            "n_test": len(xt)}


def cell_probe(model: str, profile: str, control: str, *, cell: str, sizes: tuple, seed: int = 0) -> dict:
    """Linear and k-NN accuracy of one (t, block) cell (a key of `ddae_grid`, e.g. its validation-chosen 'best')
    on `probe_split(sizes, seed)`: the same kind of probe as the grid's, on a larger test set when the grid's is too
    small to resolve the differences asked about. {'linear', 'knn', 'n_test'}."""
    if control == "pixels":
        raise bad(InputError, "control", control, "probe pixels with ddae_grid(..., 'pixels'); a cell needs a network")
    return memo.cached(_cell_probe, model, profile, control, cell, tuple(sizes), seed,
                       deps=_deps(model, profile, control))


# -------------------------------------------------------------------------------------------- DDPM-Seg

def _scene_sets(seed: int, labelled: int, n_eval: int):
    train = toy_scenes.split("train")
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    return train[idx[:labelled]], train[idx[labelled:labelled + 200]], toy_scenes.split("test")[:n_eval]


def _segmentation(profile, control, ts, labels, n_eval, seed, models, steps, batch):
    lab, val, ev = _scene_sets(seed, max(labels), n_eval)
    classes = len(toy_scenes.CLASSES)

    def fit_and_predict(f_train, masks, f_test):          # channels standardised on the labelled pixels
        mean, std = f_train.mean((0, 2, 3), keepdim=True), f_train.std((0, 2, 3), keepdim=True).clamp(min=1e-6)
        heads = probes.train_pixel_ensemble((f_train - mean) / std, masks, classes, models=models, steps=steps,
                                            batch=batch, seed=seed)
        return probes.predict_pixels(heads, (f_test - mean) / std)

    if control == "pixels":
        feats, by_t, t_best = (lambda s: s.images), {}, -1
    else:
        net = network(SCENE_MODEL, profile, control)
        dense = lambda s, t: fw.dense_features(net, s.images, t, SEG_LAYERS, size=s.images.shape[-1], seed=seed,
                                               bf16=BF16)
        budget = sorted(labels)[len(labels) // 2]           # choose t at the middle label budget (Eq. 16 over t)
        t_best, by_t = fw.grid_search(lambda t: probes.miou(
            fit_and_predict(dense(lab[:budget], t), lab.masks[:budget], dense(val, t)), val.masks, classes), ts)
        feats = lambda s: dense(s, t_best)
    f_lab, f_ev = feats(lab), feats(ev)
    out = {"t": t_best, "val_by_t": torch.tensor([by_t.get(t, float("nan")) for t in ts])}
    mious = []
    for n in labels:
        pred = fit_and_predict(f_lab[:n], lab.masks[:n], f_ev)
        mious.append(probes.miou(pred, ev.masks, classes))
        if n == max(labels):
            out["pred"] = pred[:8].to(torch.uint8)
    out["miou"] = torch.tensor(mious)
    return out


def segmentation(profile: str, control: str, *, ts, labels, n_eval: int, seed: int = 0, models: int = 3,
                 steps: int = 200, batch: int = 512) -> dict:
    """DDPM-Seg on toy scenes: pixel-MLP ensembles on the decoder's upsampled activations, trained from the first
    n labelled scenes for each n in `labels`. t is chosen on 200 validation scenes (mIoU at the middle label
    budget); returns {'t', 'val_by_t', 'miou' (per budget, on the first n_eval test scenes), 'pred' (masks of the
    first 8 test scenes at the largest budget)}. control 'pixels' classifies each pixel from its colour."""
    return memo.cached(_segmentation, profile, control, tuple(ts), tuple(labels), n_eval, seed, models, steps,
                       batch, deps=_deps(SCENE_MODEL, profile, control))


# ------------------------------------------------------------------------------------------------ DIFT

def _pair_sets(seed: int, n_pairs: int, pool: int = 200):
    """Scenes and pairs: a training pool (for learned heads) from the train split, an evaluation pool from test."""
    train = toy_scenes.split("train")
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + 10_000))[:pool]
    fit_pool, eval_pool = train[idx], toy_scenes.split("test")[-pool:]
    return (fit_pool, toy_scenes.pairs(fit_pool, n_pairs, seed)), (eval_pool, toy_scenes.pairs(eval_pool, n_pairs, seed))


def _correspondence(profile, control, ts, layers, ensemble, n_pairs, seed):
    (fit_pool, fit_pairs), (pool, pairs) = _pair_sets(seed, n_pairs)
    size, thr = pool.images.shape[-1], PCK_ALPHA * pool.images.shape[-1]
    if control == "pixels":
        pck, matches = probes.keypoint_pck(pool.images, pool.keypoints, pool.kp_visible, pairs, size, thr)
        return {"pck": torch.tensor([[pck]]), "val_pck": torch.tensor([[float("nan")]]), "best": "pixels",
                "best_pck": pck, "pairs": pairs, "pred": matches[0][0]}
    net = network(SCENE_MODEL, profile, control)
    grids, preds = {}, {}
    for split, (scenes, p) in (("val", (fit_pool, fit_pairs)), ("test", (pool, pairs))):
        maps = fw.feature_maps(net, scenes.images, ts, layers, ensemble=ensemble, seed=seed, bf16=BF16)
        grid = grids[split] = {}
        for (t, layer), m in maps.items():
            grid[fw.cell(t, layer)], matches = probes.keypoint_pck(m, scenes.keypoints, scenes.kp_visible, p, size,
                                                                   thr)
            if split == "test":
                preds[fw.cell(t, layer)] = matches[0][0]
    best = max(grids["val"], key=grids["val"].get)          # Eq. 16 on the training pairs, never on test
    return {"pck": fw.as_table(grids["test"], ts, layers), "val_pck": fw.as_table(grids["val"], ts, layers),
            "best": best, "best_pck": grids["test"][best], "pairs": pairs, "pred": preds[best]}


def correspondence(profile: str, control: str, *, ts, layers, ensemble: int, n_pairs: int, seed: int = 0) -> dict:
    """DIFT on toy scenes: nearest-neighbour matching of every keypoint visible in both scenes of up to n_pairs
    test pairs (same shape class, unique in each scene), one (t, layer) at a time. The cell is chosen on as many
    pairs of training scenes (the pairs that hyperfeature heads train on). Returns {'pck', 'val_pck': (len(ts),
    len(layers)) PCK@0.1 on the test and the training pairs, 'best' (the cell chosen on the training pairs),
    'best_pck' (its test PCK), 'pairs' (the test pairs), 'pred' (the chosen cell's matches for the first pair)}."""
    return memo.cached(_correspondence, profile, control, tuple(ts), tuple(layers), ensemble, n_pairs, seed,
                       deps=_deps(SCENE_MODEL, profile, control))


# ------------------------------------------------------------------------------------- Hyperfeatures

def _fit_head(head, maps, scenes, pairs, steps, seed, size):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    # the mixing logits get a larger step than the bottlenecks: with a few hundred steps at 1e-3 they barely move
    mixing = [head.logits]
    rest = [p for p in head.parameters() if p is not head.logits]
    opt = torch.optim.Adam([{"params": rest, "lr": 1e-3}, {"params": mixing, "lr": MIX_LR}])
    for _ in range(steps):
        batch = pairs[torch.randint(0, len(pairs), (8,), generator=g)]
        imgs = torch.cat([batch[:, 0], batch[:, 2]])
        f = head({k: v[imgs] for k, v in maps.items()})
        loss = 0
        for b, (i, si, j, sj) in enumerate(batch.tolist()):
            both = scenes.kp_visible[i, si] & scenes.kp_visible[j, sj]
            loss = loss + probes.correspondence_loss(f[b], f[len(batch) + b], scenes.keypoints[i, si][both],
                                                     scenes.keypoints[j, sj][both], size)
        opt.zero_grad()
        (loss / len(batch)).backward()
        opt.step()
    return head.eval()


HEADS = ("mixture", "uniform", "single")


def _hyperfeatures(profile, control, ts, layers, ensemble, n_pairs, steps, seed, heads):
    (fit_pool, fit_pairs), (pool, pairs) = _pair_sets(seed, n_pairs)
    size, thr = pool.images.shape[-1], PCK_ALPHA * pool.images.shape[-1]
    net = network(SCENE_MODEL, profile, control)
    fit_maps, eval_maps = (fw.feature_maps(net, s.images, ts, layers, ensemble=ensemble, seed=seed, bf16=BF16)
                           for s in (fit_pool, pool))
    channels = {l: fit_maps[(ts[0], l)].shape[1] for l in layers}
    score = lambda m, s, p: probes.keypoint_pck(m, s.keypoints, s.kp_visible, p, size, thr)[0]
    # the best single (t, layer) of raw features, chosen on the fitting pairs (Eq. 16), scored on the test pairs
    (t1, l1), _ = fw.grid_search(lambda k: score(fit_maps[k], fit_pool, fit_pairs), fit_maps)
    points = sum(int((pool.kp_visible[i, si] & pool.kp_visible[j, sj]).sum()) for i, si, j, sj in pairs.tolist())
    out = {"t_single": t1, "layer_single": l1, "raw_single": score(eval_maps[(t1, l1)], pool, pairs), "points": points}
    # name: (layers' channels, timesteps, whether the mixing weights learn); 'uniform' freezes them at 1 / cells
    specs = {"mixture": (channels, ts, True), "uniform": (channels, ts, False),
             "single": ({l1: channels[l1]}, [t1], True)}
    for name in heads:
        chans, steps_t, learn = specs[name]
        torch.manual_seed(seed)                             # the same initial bottleneck weights for every head
        head = probes.Hyperfeatures(chans, steps_t, size=size // 2)
        head.logits.requires_grad_(learn)
        _fit_head(head, fit_maps, fit_pool, fit_pairs, steps, seed, size)
        with torch.no_grad():
            out[name] = score(head(eval_maps), pool, pairs)
        if name == "mixture":
            out["weights"] = head.weights().detach()
    return out


def hyperfeatures(profile: str, *, control: str = "trained", ts, layers, ensemble: int, n_pairs: int, steps: int,
                  seed: int = 0, heads=HEADS) -> dict:
    """Diffusion Hyperfeatures on toy scenes: the same bottleneck head, trained with the same correspondence loss
    on training pairs, on a learned mixture over every (t, layer) ('mixture'), on the same mixture with its
    weights frozen uniform ('uniform'), and on the best single (t, layer) ('single', chosen on the training pairs);
    PCK@0.1 on the test pairs of `correspondence`. control: the scene U-Net's 'trained' or 'random' weights.
    Returns {each head in `heads`: PCK, 'raw_single' (the single cell's raw features, no head), 't_single',
    'layer_single', 'weights' (the learned mixture's, (len(ts), len(layers))), 'points' (keypoints scored)}."""
    unknown = [h for h in heads if h not in HEADS]
    if unknown or not heads:
        raise bad(InputError, "heads", heads, f"choose heads among {HEADS}", "unknown or no heads")
    return memo.cached(_hyperfeatures, profile, control, tuple(ts), tuple(layers), ensemble, n_pairs, steps, seed,
                       tuple(heads), deps=_deps(SCENE_MODEL, profile, control))
