"""Probes on frozen features: each one recovers a planted answer and stays at chance without one."""
import pytest
import torch
import torch.nn.functional as F

from diffrep_lib import framework, probes


def clusters(n, d=16, classes=4, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * 3
    y = torch.arange(n) % classes
    return centres[y] + spread * torch.randn(n, d, generator=g), y


def test_linear_knn_and_few_label_probes_find_planted_classes_and_not_random_ones():
    x2, y2 = clusters(400)
    assert probes.linear_probe(x2[:300], y2[:300], x2[300:], y2[300:]) > 0.95
    assert probes.knn_accuracy(x2[:300], y2[:300], x2[300:], y2[300:], k=5) > 0.95
    mean, std = probes.few_label_probe(x2[:300], y2[:300], x2[300:], y2[300:], per_class=3, draws=3)
    assert mean > 0.9 and std >= 0
    noise = torch.randn(400, 16, generator=torch.Generator().manual_seed(5))
    assert probes.linear_probe(noise[:300], y2[:300], noise[300:], y2[300:]) < 0.45    # chance is 0.25
    assert probes.linear_probe(x2[:300], y2[:300], x2[300:], y2[300:]) == \
        probes.linear_probe(x2[:300], y2[:300], x2[300:], y2[300:])                   # one fixed budget: deterministic


def test_the_fitted_head_is_the_linear_probe_on_raw_features():
    x, y = clusters(600, spread=3.0)                     # overlapping classes: the probe is not perfect
    x = 5 * x + 3                                        # far from standardised: the folding must undo it
    (tr, te), (ytr, yte) = (x[:400], x[400:]), (y[:400], y[400:])
    head = probes.fit_linear_head(tr, ytr)
    z_tr, z_te = probes.standardize(tr, te)
    reference = probes.classification._train_head(z_tr, ytr, 4, probes.ProbeConfig())
    with torch.no_grad():
        torch.testing.assert_close(head(te), reference(z_te), rtol=1e-4, atol=1e-4)
        acc = (head(te).argmax(1) == yte).float().mean().item()
    assert 0.5 < acc < 1 and acc == pytest.approx(probes.linear_probe(tr, ytr, te, yte), abs=1e-6)
    assert probes.fit_linear_head(tr, ytr, classes=7).out_features == 7


def test_grid_search_returns_the_best_cell_and_the_grid():
    cells = [(t, b) for t in (0, 10, 25, 100) for b in ("mid", "up.1")]
    best, grid = framework.grid_search(lambda c: -abs(c[0] - 25) - (c[1] != "up.1"), cells)
    assert best == (25, "up.1") and len(grid) == 8


def test_pixel_ensemble_segments_planted_features_and_miou_counts_correctly():
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 3, (6, 8, 8), generator=g)
    feats = torch.nn.functional.one_hot(masks, 3).permute(0, 3, 1, 2).float() + 0.1 * torch.randn(6, 3, 8, 8, generator=g)
    models = probes.train_pixel_ensemble(feats[:4], masks[:4], classes=3, models=3, steps=150)
    pred = probes.predict_pixels(models, feats[4:])
    assert pred.shape == (2, 8, 8) and probes.miou(pred, masks[4:], 3) > 0.95
    target = torch.tensor([[0, 0, 1, 1]])
    assert probes.miou(torch.tensor([[0, 1, 1, 1]]), target, 2) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_matching_follows_a_shift_and_pck_measures_it():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(8, 16, 16, generator=g)
    tgt = torch.roll(src, shifts=(2, 3), dims=(1, 2))                 # content moves 3 px right, 2 px down
    pts = torch.tensor([[5.5, 5.5], [8.5, 4.5], [10.5, 9.5]])
    pred = probes.match_points(src, tgt, pts, image_size=16)
    assert torch.allclose(pred, pts + torch.tensor([3.0, 2.0]))
    assert probes.pck(pred, pts + torch.tensor([3.0, 2.0]), 0.5) == 1.0 and probes.pck(pred, pts, 1.0) == 0.0


def test_hyperfeatures_mix_with_softmax_weights_and_learn_a_correspondence():
    torch.manual_seed(0)
    maps = {(t, l): torch.randn(2, c, 8, 8) for t in (0, 50) for l, c in (("up.0", 6), ("up.1", 4))}
    hyper = probes.Hyperfeatures({"up.0": 6, "up.1": 4}, timesteps=(0, 50), dim=8, size=8)
    assert torch.allclose(hyper.weights().sum(), torch.tensor(1.0)) and hyper(maps).shape == (2, 8, 8, 8)
    pts = torch.tensor([[2.5, 2.5], [5.5, 1.5], [6.5, 6.5]])
    opt = torch.optim.Adam(hyper.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):                                     # image 1 is image 0: points match themselves
        f = hyper({k: v[:1].expand(2, -1, -1, -1) for k, v in maps.items()})
        loss = probes.correspondence_loss(f[0], f[1], pts, pts, image_size=8)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_hyperfeatures_equal_the_weighted_sum_of_resized_bottlenecks():
    """The forward pass runs the bottleneck's last convolution and the resize once per layer on the weighted
    sum over timesteps; that must equal the definition, a sum over every (t, layer) of the weight times the
    resized bottleneck output, with trained (non-uniform) weights and a non-zero bias."""
    torch.manual_seed(0)
    chans = {"up.0": 6, "up.1": 4}
    maps = {(t, l): torch.randn(3, c, 4 * (1 + i), 4 * (1 + i)) for t in (0, 10, 50)
            for i, (l, c) in enumerate(chans.items())}
    hyper = probes.Hyperfeatures(chans, timesteps=(0, 10, 50), dim=8, size=6)
    with torch.no_grad():
        hyper.logits.normal_()
        for seq in hyper.bottleneck.values():
            seq[-1].bias.normal_()
    w = hyper.weights()
    direct = sum(w[i, j] * F.interpolate(hyper.bottleneck[l.replace(".", "_")](maps[(t, l)]), size=(6, 6),
                                         mode="bilinear", align_corners=False)
                 for i, t in enumerate((0, 10, 50)) for j, l in enumerate(chans))
    assert torch.allclose(hyper(maps), direct, atol=1e-5)


def test_keypoint_pck_matches_each_pair_as_match_points_does():
    """keypoint_pck upsamples each image's map once and reuses it across pairs (and skips images in no pair);
    every pair's matches must be those of match_points on the two maps alone."""
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(5, 6, 5, 5, generator=g)
    keypoints = torch.rand(5, 2, 3, 2, generator=g) * 19
    visible = torch.rand(5, 2, 3, generator=g) > 0.2
    pairs = torch.tensor([[0, 0, 1, 1], [1, 0, 3, 1], [3, 1, 0, 0], [0, 1, 3, 0]])      # image 2 and 4 unused
    visible[pairs[:, 0], pairs[:, 1], 0] = visible[pairs[:, 2], pairs[:, 3], 0] = True
    _, matches = probes.keypoint_pck(maps, keypoints, visible, pairs, 20, 2.0)
    for (i, si, j, sj), (pred, true) in zip(pairs.tolist(), matches):
        both = visible[i, si] & visible[j, sj]
        assert torch.equal(pred, probes.match_points(maps[i], maps[j], keypoints[i, si][both], 20))
        assert torch.equal(true, keypoints[j, sj][both])


def test_keypoint_pck_on_a_hand_computed_pair():
    """Image 1 is image 0 moved 2 px right; of three visible keypoints the third's truth is put 5 px off, so
    exactly 2 of 3 matches count at a 1-px threshold. A hidden keypoint is not scored."""
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(1, 6, 12, 12, generator=g)
    maps = torch.cat([maps, torch.roll(maps, shifts=2, dims=3)])
    kp = torch.tensor([[[3.5, 4.5], [6.5, 2.5], [5.5, 8.5], [1.5, 1.5]]])            # (S=1, K=4, 2)
    keypoints = torch.stack([kp, kp + torch.tensor([2.0, 0.0])])                    # (N=2, 1, 4, 2)
    keypoints[1, 0, 2, 1] += 5.0
    visible = torch.tensor([[[True, True, True, False]], [[True, True, True, True]]])
    score, matches = probes.keypoint_pck(maps, keypoints, visible, torch.tensor([[0, 0, 1, 0]]), 12, 1.0)
    assert score == pytest.approx(2 / 3) and len(matches) == 1 and matches[0][0].shape == (3, 2)
    assert torch.allclose(matches[0][0], kp[0, :3] + torch.tensor([2.0, 0.0]))
