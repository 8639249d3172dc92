"""Assignment-based guidance (survey §3.2.1-§3.2.2, Fig. 6; ch. 9): conditions that nobody labelled.

    features = assignments.encoder_features("simclr_fmnist", profile)   # a frozen encoder's pooled embeddings
    ids, centres = assignments.kmeans(features, k)                      # offline: cluster once, then train
    clusters = assignments.OnlineClusters(dim, k)                       # online: learn the clusters in training

The cluster id then plays the part of the class label in a conditional denoiser trained with condition dropout,
and classifier-free guidance (ch. 3) steers sampling by it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, bad
from .. import data, zoo
from ..support import memo
from ..support.runtime import feature_batch
from ..zoo import registry
from . import denoising, encoders


PIXELS = "pixels"       # the control: cluster the raw images instead of an encoder's features


def _features(name: str, profile: str, split: str, init: str) -> Tensor:
    x, _ = data.fashion_mnist.tensors(split)
    if name == PIXELS:
        return x.flatten(1)
    enc = encoders.load(name, profile, init=init)
    batch = feature_batch(x.device)      # 128 on a CPU: about 1.4x the images per second of batches of 1,000 on
    return torch.cat([enc.pooled(x[i:i + batch]) for i in range(0, len(x), batch)])   # two cores, the same bits


def _model_id(name: str, profile: str, init: str) -> str:
    return PIXELS if name == PIXELS else zoo.model_id(name, profile, init=init)


def encoder_features(name: str, profile: str, split: str = "train", *, init: str = "trained") -> Tensor:
    """The pooled embeddings (N, D) of a zoo encoder for every Fashion-MNIST image of a split (name 'pixels': the
    flattened images; init='random': the encoder with random weights); memoised."""
    return memo.cached(_features, name, profile, split, init, deps=(_model_id(name, profile, init),))


def kmeans(features: Tensor, k: int, seed: int = 0, n_init: int = 3) -> tuple[Tensor, Tensor]:
    """k-means (scikit-learn) on L2-normalised features, the cosine geometry a contrastive encoder is trained in.
    Returns (cluster id per row (N,), centres (k, D))."""
    from sklearn.cluster import KMeans

    if not 2 <= k <= len(features):
        raise bad(InputError, "k", k, f"k must be between 2 and the number of samples ({len(features)})")
    z = F.normalize(features.double(), dim=1).numpy()
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z)
    return torch.from_numpy(km.labels_.astype(np.int64)), torch.from_numpy(km.cluster_centers_).float()


def _kmeans_ids(name: str, profile: str, k: int, seed: int, init: str) -> dict:
    ids, centres = kmeans(encoder_features(name, profile, init=init), k, seed)
    return {"ids": ids, "centres": centres}


def kmeans_ids(name: str, profile: str, k: int, seed: int = 0, *, init: str = "trained") -> dict:
    """{'ids': (60000,), 'centres': (k, D)}: the k-means clusters of a zoo encoder's training-set features (name
    'pixels': of the raw images), the condition of an offline self-labelled model; memoised (the zoo's recipes and
    the chapter share them)."""
    return memo.cached(_kmeans_ids, name, profile, k, seed, init, deps=(_model_id(name, profile, init),))


def nearest(features: Tensor, centres: Tensor) -> Tensor:
    """The id of the nearest centre (cosine) for each row: assigns new images to fixed clusters."""
    return (F.normalize(features, dim=1) @ F.normalize(centres, dim=1).T).argmax(1)


@torch.no_grad()
def sinkhorn_knopp(scores: Tensor, epsilon: float = 0.05, iters: int = 3) -> Tensor:
    """Soft assignments Q (N, K) of N samples to K prototypes from their similarity scores (N, K), with every
    prototype used equally often (SwAV, Caron et al. 2020): Q = diag(u) exp(scores / epsilon) diag(v), rows
    summing to 1 and columns to N / K after enough iterations."""
    q = torch.exp((scores - scores.max()) / epsilon).T               # (K, N)
    q /= q.sum()
    k, n = q.shape
    for _ in range(iters):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= n
    return (q * n).T                                                  # rows sum to 1


class OnlineClusters(nn.Module):
    """Clusters learned while the denoiser trains (online guidance, survey §3.2.2): k prototypes on the unit sphere,
    trained on one view per image, so self-labelling by balanced assignments (SeLa, Asano et al. 2020) rather than
    SwAV's prediction of one view's assignment from another (Caron et al. 2020). Each batch is assigned to them with
    Sinkhorn-Knopp, which forces every prototype to take an equal share (so no cluster can absorb the data), and the
    prototypes are trained to predict those balanced assignments from the cosine scores."""

    def __init__(self, dim: int, k: int, temperature: float = 0.1, epsilon: float = 0.05):
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(k, dim) / dim ** 0.5)
        self.temperature, self.epsilon = temperature, epsilon

    @property
    def k(self) -> int:
        return self.prototypes.shape[0]

    def scores(self, features: Tensor) -> Tensor:
        return F.normalize(features, dim=1) @ F.normalize(self.prototypes, dim=1).T

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(balanced hard assignments (N,), per-sample loss of predicting them (N,)) for one batch."""
        s = self.scores(features)
        q = sinkhorn_knopp(s.detach(), self.epsilon)
        loss = -(q * F.log_softmax(s / self.temperature, dim=1)).sum(1)
        return q.argmax(1), loss

    @torch.no_grad()
    def assign(self, features: Tensor) -> Tensor:
        """The nearest prototype of each feature row (after training: no balancing needed)."""
        return self.scores(features).argmax(1)


def purity(ids: Tensor, labels: Tensor) -> float:
    """Share of images whose cluster's majority class is their own class (1.0: clusters never mix classes)."""
    table = contingency(ids, labels)
    return (table.max(1).values.sum() / table.sum()).item()


def contingency(ids: Tensor, labels: Tensor, k: int | None = None, classes: int | None = None) -> Tensor:
    """Counts (k, classes): how many images of each class fall in each cluster."""
    k = k or int(ids.max()) + 1
    classes = classes or int(labels.max()) + 1
    return torch.bincount(ids * classes + labels, minlength=k * classes).view(k, classes)


def nmi(ids: Tensor, labels: Tensor) -> float:
    """Normalised mutual information between clusters and classes (scikit-learn)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(labels.numpy(), ids.numpy()))


def label_counts(ids: Tensor, k: int) -> tuple[int, ...]:
    """How often each cluster occurs, as a tuple (a hashable argument for memoised sampling)."""
    return tuple(torch.bincount(ids, minlength=k).tolist())


# ------------------------------------------------------------------------------------- the zoo's entries

class SelfLabelled(encoders.WithTeacher):
    """Online guidance: the conditional denoiser `net` and the cluster prototypes whose ids condition it."""

    def __init__(self, net: nn.Module, clusters: nn.Module, teacher=None):
        super().__init__(net, teacher)
        self.clusters = clusters

    @torch.no_grad()
    def assign(self, features: Tensor) -> Tensor:
        return self.clusters.assign(features)


def online_cluster_terms(net, x0: Tensor, y=None, *, recipe, abar, null=None, generator=None) -> dict[str, Tensor]:
    """Online guidance (ch. 9): the batch is assigned to the prototypes by Sinkhorn-Knopp on the frozen teacher's
    features, those ids condition the denoiser (with condition dropout), and the prototypes learn to predict them
    (`net` is a SelfLabelled; human labels are never used)."""
    ids, cluster_loss = net.clusters(net.teacher.to(x0.device).pooled(x0))
    terms = denoising.denoising_terms(net.net, x0, ids, recipe=recipe, abar=abar, null=null, generator=generator)
    return {**terms, "cluster": cluster_loss}


def with_prototypes(r, net, *, for_training: bool):
    """The stored module holds the prototypes beside the U-Net; training also holds the teacher."""
    dim = zoo.recipes.get(r.teacher, r.profile).model.widths[-1]
    enc = encoders.teacher(r) if for_training else None       # loaded before the prototypes are drawn
    return SelfLabelled(net, OnlineClusters(dim, r.clusters), enc)


def teacher_clusters(r, x, y):
    """The k-means ids of the recipe's teacher features, fixed before training (the labels are not used)."""
    return kmeans_ids(r.teacher, r.profile, r.clusters, r.seed, init=r.teacher_init)["ids"]


def pixel_clusters(r, x, y):
    """The control for self-labelled ids: k-means of the raw images, the same clustering without an encoder."""
    return kmeans_ids(PIXELS, r.profile, r.clusters, r.seed)["ids"]


def random_ids(r, x, y):
    """The control that carries no information about the images: ids drawn uniformly at random, fixed per image
    (a seeded draw, so the model is trained on one fixed random partition)."""
    return torch.randint(r.clusters, (len(x),), generator=torch.Generator().manual_seed(r.seed))


registry.register(registry.METHODS, "denoise_online", registry.Method(
    terms=online_cluster_terms, evaluate=denoising.held_out_loss, wrap=with_prototypes))
registry.register(registry.CONDITIONS, "kmeans", registry.Condition(ids=teacher_clusters))
registry.register(registry.CONDITIONS, "kmeans_pixels", registry.Condition(ids=pixel_clusters))
registry.register(registry.CONDITIONS, "random", registry.Condition(ids=random_ids))
registry.register(registry.CONDITIONS, "online", registry.Condition(ids=lambda r, x, y: None))
