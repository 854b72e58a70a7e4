"""Train a :class:`models.reward_head.RewardHead` on encoded, labelled ground-truth frames.

Loss: binary cross-entropy on the success logit (positives up-weighted by the square root of the
class ratio, since successes are rare) plus a mean squared error on the scaled, clipped distance.
Metrics are reported on held-out *episodes* (frames of one episode are strongly correlated, so a
frame-level split would flatter the head).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.reward_head import RewardHead, RewardHeadConfig

__all__ = ["classification_metrics", "encode_in_batches", "train_reward_head"]


@torch.no_grad()
def encode_in_batches(
    autoencoder: torch.nn.Module, frames: np.ndarray, batch_size: int = 256, progress: bool = True
) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` frames ⇒ float32 ``(N, num_tokens, C)`` latents on the CPU."""
    out = [
        autoencoder.encode(frames[i : i + batch_size]).float().cpu()
        for i in tqdm(range(0, len(frames), batch_size), desc="encode", unit="batch", disable=not progress)
    ]
    return torch.cat(out)


def classification_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    """Accuracy, precision, recall and F1 of bool predictions ``(N,)`` against bool labels ``(N,)``.

    Precision (recall) is reported as NaN-free 0.0 when nothing is predicted (present) positive.
    """
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    n = len(truth)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "frames": n,
        "positives": int(truth.sum()),
        "accuracy": float((predicted == truth).mean()) if n else 0.0,
        "majority_accuracy": float(max(truth.mean(), 1 - truth.mean())) if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


def _evaluate(
    head: RewardHead, latents: torch.Tensor, success: np.ndarray, distance: np.ndarray
) -> dict[str, Any]:
    head.eval()
    probs, dists = [], []
    for i in range(0, len(latents), 1024):
        p, d = head.predict(latents[i : i + 1024])
        probs.append(p.numpy())
        dists.append(d.numpy())
    prob, dist = np.concatenate(probs), np.concatenate(dists)
    metrics: dict[str, Any] = classification_metrics(prob > 0.5, success)
    clipped = np.minimum(distance, head.config.max_distance)
    metrics["distance_mae_blocks"] = float(np.abs(dist - clipped).mean()) if len(dist) else 0.0
    return metrics


def train_reward_head(
    latents: torch.Tensor,
    success: np.ndarray,
    distance: np.ndarray,
    test_mask: np.ndarray,
    config: RewardHeadConfig,
    epochs: int = 40,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    pos_weight: float | None = None,
    weight_decay: float = 0.05,
    latent_noise: float = 0.0,
    progress: bool = True,
) -> tuple[RewardHead, dict[str, Any]]:
    """Fit a head on the frames outside ``test_mask``; measure it on both splits.

    Args:
        latents: float32 ``(N, num_tokens, C)`` autoencoder latents of the frames.
        success: bool ``(N,)`` labels.
        distance: float ``(N,)`` blocks to the nearest landmark.
        test_mask: bool ``(N,)``: held-out frames (whole episodes).
        config: the head's architecture and task.
        epochs: passes over the training frames.
        batch_size: frames per optimiser step.
        lr: AdamW learning rate (cosine-decayed to 0).
        seed: torch seed of the initialisation, dropout and the batch order.
        pos_weight: weight of the positive (success) frames in the loss; None: the square root of
            the negative/positive ratio (full class balancing trades too much precision for recall:
            a false success in imagination ends the episode with an unearned reward).
        weight_decay: AdamW weight decay (decoupled).
        latent_noise: std of Gaussian noise added to the training latents (tanh range [-1, 1]); the
            head then tolerates latents that differ a little from the autoencoder's, as the
            diffusion model's generated ones do.
        progress: show a progress bar.

    Returns:
        The trained head (eval mode, CPU) and ``{"train": metrics, "test": metrics, ...}``.
    """
    train = ~np.asarray(test_mask, bool)
    if weight_decay < 0 or latent_noise < 0:
        raise ValueError(f"weight_decay and latent_noise must be >= 0, got {weight_decay}, {latent_noise}")
    if train.sum() == 0:
        raise ValueError("no training frames: every frame is held out")
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # initialisation, dropout and batch order: the run is reproducible
        optimiser = (epochs, batch_size, lr, pos_weight, weight_decay, latent_noise)
        return _fit(latents, success, distance, train, config, optimiser, progress)


def _fit(
    latents: torch.Tensor,
    success: np.ndarray,
    distance: np.ndarray,
    train: np.ndarray,
    config: RewardHeadConfig,
    optimiser: tuple[int, int, float, float | None, float, float],
    progress: bool,
) -> tuple[RewardHead, dict[str, Any]]:
    epochs, batch_size, lr, pos_weight, weight_decay, latent_noise = optimiser
    head = RewardHead(config)
    x = latents[torch.from_numpy(train)]
    y = torch.from_numpy(success[train].astype(np.float32))
    d = (
        torch.from_numpy(np.minimum(distance[train], config.max_distance).astype(np.float32))
        / config.distance_scale
    )
    positives = float(y.sum())
    if pos_weight is None:  # up-weight the rare successes so that recall does not collapse
        pos_weight = min(max(((len(y) - positives) / max(positives, 1.0)) ** 0.5, 1.0), 50.0)
    weight = torch.tensor(float(pos_weight))
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(x) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs * steps_per_epoch, 1))
    losses = []
    for _ in tqdm(range(epochs), desc="train head", unit="epoch", disable=not progress):
        head.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            inputs = x[idx]
            if latent_noise > 0:
                inputs = inputs + latent_noise * torch.randn_like(inputs)
            out = head(inputs)
            loss = F.binary_cross_entropy_with_logits(out[:, 0], y[idx], pos_weight=weight)
            loss = loss + F.mse_loss(out[:, 1], d[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
    head.eval()
    test = ~train
    metrics = {
        "train": _evaluate(head, x, success[train], distance[train]),
        "test": _evaluate(head, latents[torch.from_numpy(test)], success[test], distance[test]),
        "pos_weight": float(weight),
        "final_loss": float(np.mean(losses[-max(1, steps_per_epoch) :])),
    }
    return head, metrics
