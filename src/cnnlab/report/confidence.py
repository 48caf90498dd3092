"""How confident a model's predictions are: log-probabilities from logits, the predicted class
as the metrics count it, and the most (or least) confident examples, for the prediction grids,
``cnnlab explain --select`` and ``cnnlab predict``. No plotting here: importing it loads no
matplotlib."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..training.loop import predicted_labels


def log_probabilities(logits):
    """Float64 ``(N, K)`` log class probabilities from logits ``(N, K)`` (log-softmax), or from one
    sigmoid output ``(N, 1)`` as ``(log(1 - p), log p)``. In float64 and in logs because float32
    probabilities round to exactly 1.0 past a logit margin of about 17, which would tie a trained
    model's confident predictions."""
    z = logits.double()
    if z.shape[1] == 1:
        return torch.stack([F.logsigmoid(-z[:, 0]), F.logsigmoid(z[:, 0])], 1)
    return torch.log_softmax(z, 1)


def predictions(logits):
    """``(pred, confidence, log_confidence)`` for logits ``(N, K)`` or ``(N, 1)``: the predicted
    classes int64 ``(N,)`` exactly as the metrics count them
    (:func:`cnnlab.training.predicted_labels`: a binary logit of 1e-8 is class 1, though its
    float32 probability is 0.5), their probability float32 ``(N,)`` and its log in float64 (the
    ranking key: it keeps confident predictions apart)."""
    logits = logits.cpu()
    pred = predicted_labels(logits)
    log_conf = log_probabilities(logits).gather(1, pred.view(-1, 1)).squeeze(1)
    return pred, log_conf.exp().float(), log_conf


def select_predictions(labels, logits, kind: str, n: int, seed: int = 0) -> list[int]:
    """Indices of up to ``n`` examples: ``"best"`` the most confident correct predictions,
    ``"worst"`` the most confident wrong ones (most confident first), ``"random"`` a sample drawn
    with ``seed``. ``labels`` int64 ``(N,)``; ``logits`` float ``(N, K)`` or ``(N, 1)`` (not
    read for ``"random"``, may be None).

    Raises:
        ValueError: another ``kind``.
    """
    if kind == "random":
        return torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    if kind not in ("best", "worst"):
        raise ValueError(f"kind must be best, worst or random, got {kind!r}")
    pred, _, log_conf = predictions(logits)
    correct = pred == labels
    idx = torch.nonzero(correct if kind == "best" else ~correct).flatten()
    return idx[log_conf[idx].argsort(descending=True, stable=True)][:n].tolist()
