"""VirNucPro's MLP classifier: our module, and a loader for the files users have.

``load_classifier`` reads VirNucPro's own ``300_model.pth`` / ``500_model.pth`` (a pickled
whole module, read through inert stand-ins: nothing in it runs), a state dict or safetensors;
``ClassifierModule.scores`` gives (score1, score2) per frame as VirNucPro's ``predict`` does.
"""

from .loader import DEFAULT_EPS, checked_state, load_classifier
from .module import NUM_CLASSES, ClassifierModule, softmax_scores
from .saving import random_classifier, save_classifier

__all__ = [
    "DEFAULT_EPS",
    "NUM_CLASSES",
    "ClassifierModule",
    "checked_state",
    "load_classifier",
    "random_classifier",
    "save_classifier",
    "softmax_scores",
]
