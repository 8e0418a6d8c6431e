"""VirNucPro's classifier as our own module: features -> Linear -> BatchNorm1d -> ReLU -> Linear -> 2 logits.

VirNucPro's ``MLPClassifier`` (``prediction.py``, ``train.py``) is ``hidden_layer`` (Linear
3328 -> 512), ``bn1`` (BatchNorm1d 512), ReLU, ``dropout`` (p = 0.5) and ``output_layer``
(Linear 512 -> 2). Its ``predict`` runs it in eval mode: BatchNorm uses its running
statistics and dropout does nothing, so this module has no dropout and no training mode.
The submodules and their weights keep VirNucPro's names, so ``state_dict()`` has the keys
of ``MLPClassifier.state_dict()``. Each step calls the same torch function VirNucPro's
modules call (``F.linear``, ``F.batch_norm`` with ``training=False``, ``F.relu``,
``F.softmax``), so on the same device and batch the scores are the same bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NUM_CLASSES", "ClassifierModule", "softmax_scores"]

#: score1 ("others") and score2 ("virus"), in that order.
NUM_CLASSES = 2


class ClassifierModule(nn.Module):
    """VirNucPro's MLP in eval mode, float32, weights frozen; build it with ``from_state``.

    Attributes:
        input_dim: features per frame (3328 = DNABERT-S 768 + ESM-2 3B 2560 for VirNucPro's files).
        hidden_dim: width of the hidden layer (512 in VirNucPro's files).
        eps: BatchNorm's epsilon (1e-5, torch's default, in VirNucPro's files).
        random: the weights are random (a demo classifier): its scores mean nothing.
    """

    def __init__(self, input_dim: int, hidden_dim: int, eps: float, *, random: bool = False) -> None:
        super().__init__()
        # Built on the meta device: from_state assigns every tensor, so no initialiser runs.
        with torch.device("meta"):
            self.hidden_layer = nn.Linear(input_dim, hidden_dim)
            self.bn1 = nn.BatchNorm1d(hidden_dim, eps=eps)
            self.output_layer = nn.Linear(hidden_dim, NUM_CLASSES)
        self.input_dim, self.hidden_dim, self.eps, self.random = input_dim, hidden_dim, eps, random
        super().train(False)

    @classmethod
    def from_state(cls, state: dict[str, Tensor], eps: float, *, random: bool = False) -> ClassifierModule:
        """A module owning float32 copies of ``state``'s tensors.

        Args:
            state: VirNucPro's keys (``hidden_layer.weight`` (H, I), ``hidden_layer.bias`` (H,),
                ``bn1.weight``/``bias``/``running_mean``/``running_var`` (H,), ``output_layer.weight``
                (2, H), ``output_layer.bias`` (2,)), already checked (``loader.checked_state``);
                ``bn1.num_batches_tracked`` may be absent (it only matters in training).
            eps: BatchNorm's epsilon, > 0.
            random: mark the weights as random.
        """
        hidden_dim, input_dim = state["hidden_layer.weight"].shape
        model = cls(int(input_dim), int(hidden_dim), eps, random=random)
        owned = {key: value.detach().to("cpu", torch.float32, copy=True).contiguous() for key, value in state.items()}
        owned["bn1.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
        model.load_state_dict(owned, strict=True, assign=True)
        model.requires_grad_(False)
        return model

    def train(self, mode: bool = True) -> ClassifierModule:
        """Eval mode only: in training mode BatchNorm would use each batch's statistics, which VirNucPro's
        ``predict`` never does."""
        if mode:
            raise RuntimeError("ClassifierModule runs in eval mode only (VirNucPro's predict); train() is refused")
        return super().train(False)

    def forward(self, features: Tensor) -> Tensor:
        """(N, input_dim) float32 features -> (N, 2) float32 logits, as ``MLPClassifier.forward`` in eval mode."""
        x = self.hidden_layer(features)  # (N, I) -> (N, H)
        x = self.bn1(x)  # running statistics: the module is in eval mode
        x = F.relu(x)
        return self.output_layer(x)  # (N, H) -> (N, 2)

    @torch.inference_mode()
    def scores(self, features: Tensor) -> Tensor:
        """(score1, score2) per frame: ``softmax_scores(self(features))``.

        Args:
            features: (N, input_dim), a float dtype, on this module's device; computed in float32
                (VirNucPro's features and weights are float32).

        Returns:
            (N, 2) float32: column 0 is score1 ("others"), column 1 score2 ("virus"); rows sum to ~1.
        """
        if features.dim() != 2 or features.shape[1] != self.input_dim or not features.is_floating_point():
            raise ValueError(
                f"features must be a (N, {self.input_dim}) float tensor for this classifier, "
                f"got {tuple(features.shape)} {features.dtype}"
            )
        return softmax_scores(self(features.to(torch.float32)))


def softmax_scores(logits: Tensor) -> Tensor:
    """(N, 2) logits -> (N, 2) probabilities, ``F.softmax(logits, dim=1)`` as VirNucPro's ``predict`` computes them.

    Column 0 is score1 ("others"), column 1 score2 ("virus"); the dtype is the logits' (float32).
    """
    return F.softmax(logits, dim=1)
