"""Make a classifier file the way VirNucPro's train.py makes 300_model.pth and 500_model.pth. Run as a script.

train.py defines MLPClassifier in the script it runs, so its pickles name ``__main__.MLPClassifier``;
it trains with CrossEntropyLoss and SGD(lr=0.0002, momentum=0.9) (BatchNorm's running statistics
move with every training batch), test_model puts the model in eval mode, and early stopping saves
``torch.save(model, 'model.pth')``: the whole module. This script does the same with VirNucPro's
class, vendored verbatim in tests/reference/virnucpro_prediction.py (identical to train.py's), on
random features, then optionally runs VirNucPro's own predict() and result writing on given
features: the reference the loader and the writers are compared with.

    python make_virnucpro_classifier.py OUT.pth [--input 3328] [--hidden 512] [--seed 0] [--eps E]
        [--location cuda:0] [--nan] [--extra-layer] [--batch-statistics] [--payload DIR] [--features F.pt --results DIR]
    python make_virnucpro_classifier.py --load FILE   # prediction.py's torch.load(FILE, weights_only=False)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(TESTS / "reference"), str(TESTS)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import virnucpro_prediction as virnucpro  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

# VirNucPro runs its class in the script it runs (train.py, prediction.py): pickles name it __main__'s.
MLPClassifier = virnucpro.MLPClassifier
MLPClassifier.__module__ = "__main__"


def trained(input_dim: int, hidden_dim: int, seed: int, steps: int = 20) -> MLPClassifier:
    """VirNucPro's classifier after ``steps`` of train.py's training on random labelled features, in eval mode."""
    torch.manual_seed(seed)
    model = MLPClassifier(input_dim, hidden_dim, 2)
    generator = torch.Generator().manual_seed(seed)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0002, momentum=0.9)
    model.train()
    for _ in range(steps):
        labels = torch.randint(0, 2, (32,), generator=generator)
        data = torch.randn(32, input_dim, generator=generator) * 1.5 + 0.3 + 0.2 * labels[:, None]
        optimizer.zero_grad()
        criterion(model(data), labels).backward()
        optimizer.step()
    model.eval()  # test_model's model.eval() runs before early stopping saves it
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--input", type=int, default=3328)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eps", type=float, help="set bn1.eps (VirNucPro's is BatchNorm1d's default, 1e-05)")
    parser.add_argument("--location", help="save every storage with this location tag, e.g. cuda:0")
    parser.add_argument("--nan", action="store_true", help="one NaN in hidden_layer.weight")
    parser.add_argument("--extra-layer", action="store_true", help="a submodule VirNucPro's class lacks")
    parser.add_argument("--batch-statistics", action="store_true", help="bn1 normalises by each batch's statistics")
    parser.add_argument("--payload", type=Path, help="embed an object whose unpickling runs os.mkdir(PAYLOAD)")
    parser.add_argument("--features", type=Path, help="{'ids', 'data'} as VirNucPro's merge_data saves it")
    parser.add_argument("--results", type=Path, help="where VirNucPro's predict() + result writing put its files")
    parser.add_argument("--load", type=Path, help="only torch.load(LOAD, weights_only=False), as prediction.py does")
    args = parser.parse_args()
    if args.load:
        torch.load(args.load, weights_only=False)
        return
    model = trained(args.input, args.hidden, args.seed)
    if args.eps is not None:
        model.bn1.eps = args.eps
    if args.nan:
        with torch.no_grad():
            model.hidden_layer.weight[3, 5] = float("nan")
    if args.extra_layer:
        model.extra = nn.Linear(2, 2)
    if args.batch_statistics:
        model.bn1 = nn.BatchNorm1d(args.hidden, track_running_stats=False)
    if args.payload:
        from payloads import MkdirPayload

        model.note = MkdirPayload(args.payload)
    if args.results:
        # prediction.py: DataLoader(batch_size=256, shuffle=False) over its merged files, predict(), then its writing
        loader = DataLoader(virnucpro.PredictDataBatchDataset([str(args.features)]), batch_size=256, shuffle=False)
        seqids, predictions, probabilities = virnucpro.predict(model, loader, torch.device("cpu"))
        args.results.mkdir(parents=True, exist_ok=True)
        virnucpro.write_results(f"{args.results}/", seqids, predictions, probabilities)
        np.save(args.results / "probabilities.npy", np.stack(probabilities))
    if args.location:
        # torch's own location tags: the tagger of the highest priority names every storage's device
        location = args.location
        torch.serialization.register_package(0, lambda storage: location, lambda storage, tag: None)
    torch.save(model, args.out)


if __name__ == "__main__":
    main()
