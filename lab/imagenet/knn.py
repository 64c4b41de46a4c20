"""Weighted k-nearest-neighbour accuracy on frozen features, the protocol of DINO (Caron et al., 2021).

Features are L2-normalised (cosine similarity); each of the k nearest training samples votes for its
class with weight exp(sim / T); the class with the largest vote wins. Defaults k = 20, T = 0.07.
The test set is processed in chunks so memory stays at chunk × N_train similarities.
"""
from __future__ import annotations

import torch

PROTOCOL = {"kind": "weighted_knn", "similarity": "cosine", "k": 20, "temperature": 0.07,
            "features": "backbone (512-d, after global average pool), eval mode",
            "reference": "DINO (Caron et al., 2021)"}


@torch.no_grad()
def weighted_knn(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, n_classes: int, k: int = 20, temperature: float = 0.07,
                 chunk: int = 1024) -> float:
    """Top-1 accuracy in [0, 1] of the weighted kNN vote.

    train_feats: (N, F), train_labels: (N,) int, test_feats: (M, F), test_labels: (M,) int.
    """
    if train_feats.shape[0] == 0 or test_feats.shape[0] == 0:
        raise ValueError(f"kNN needs train and test features, got {train_feats.shape[0]} and {test_feats.shape[0]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, train_feats.shape[0])
    train = torch.nn.functional.normalize(train_feats.float(), dim=1)
    train_labels = train_labels.to(train.device)
    correct = 0
    for start in range(0, test_feats.shape[0], chunk):
        test = torch.nn.functional.normalize(test_feats[start:start + chunk].float().to(train.device), dim=1)
        sim, idx = (test @ train.T).topk(k, dim=1)  # (m, k)
        votes = torch.zeros(test.shape[0], n_classes, device=train.device)
        votes.scatter_add_(1, train_labels[idx], (sim / temperature).exp())
        pred = votes.argmax(1)
        correct += (pred == test_labels[start:start + chunk].to(train.device)).sum().item()
    return correct / test_feats.shape[0]
