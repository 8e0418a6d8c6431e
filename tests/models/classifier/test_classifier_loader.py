"""``virnucpro.models.classifier`` against VirNucPro's own classifier files and its own ``predict``.

Every classifier file here is made by ``make_virnucpro_classifier.py`` the way VirNucPro's
``train.py`` makes one (``torch.save`` of the whole ``__main__.MLPClassifier``, after training
steps that move BatchNorm's running statistics), in a separate process; the reference scores
are VirNucPro's ``predict()`` run in that process on the live module.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from virnucpro.models.classifier import (
    ClassifierModule,
    load_classifier,
    random_classifier,
    save_classifier,
    softmax_scores,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from payloads import MkdirPayload, eval_pickle  # noqa: E402

MAKER = Path(__file__).with_name("make_virnucpro_classifier.py")
INPUT, HIDDEN = 3328, 512  # DNABERT-S 768 + ESM-2 3B 2560; VirNucPro's hidden width
FRAMES = 700  # three of VirNucPro's 256-row batches, the last one short


def make(out: Path, *options: str) -> subprocess.CompletedProcess:
    """Run the maker script in its own process (its class is that process's __main__.MLPClassifier)."""
    command = [sys.executable, str(MAKER), *([str(out)] if out else []), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def made(out: Path, *options: str) -> Path:
    result = make(out, *options)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> tuple[Path, torch.Tensor]:
    """700 frames of 3328 random features, saved as VirNucPro's merge_data saves them ({'ids', 'data'})."""
    generator = torch.Generator().manual_seed(7)
    data = torch.randn(FRAMES, INPUT, generator=generator) * 1.5 + 0.35
    ids = [f"contig{i // 12}_chunk_{i // 6 % 2 + 1}{'FFFRRR'[i % 6]}{i % 3 + 1}" for i in range(FRAMES)]
    path = tmp_path_factory.mktemp("features") / "output_1_merged.pt"
    torch.save({"ids": ids, "data": data}, path)
    return path, data


@pytest.fixture(scope="module")
def reference(tmp_path_factory, features) -> tuple[Path, Path]:
    """(VirNucPro's whole-module classifier file, the folder of VirNucPro's predict() outputs on ``features``)."""
    folder = tmp_path_factory.mktemp("reference")
    model = made(folder / "500_model.pth", "--features", str(features[0]), "--results", str(folder / "results"))
    return model, folder / "results"


def our_scores(model: ClassifierModule, data: torch.Tensor) -> np.ndarray:
    """Our scores in VirNucPro's batches (DataLoader(batch_size=256) in input order)."""
    return np.concatenate([model.scores(data[start : start + 256]).numpy() for start in range(0, len(data), 256)])


def assert_same_scores(ours: np.ndarray, expected: np.ndarray) -> None:
    difference = np.abs(ours.astype(np.float64) - expected)
    assert np.array_equal(ours, expected), f"max diff {difference.max():.3g}, mean {difference.mean():.3g}"


def test_virnucpro_file_gives_virnucpro_scores(reference, features):
    path, results = reference
    model = load_classifier(path, expect_input=INPUT)
    assert (model.input_dim, model.hidden_dim, model.eps, model.training) == (INPUT, HIDDEN, 1e-5, False)
    expected = np.load(results / "probabilities.npy")
    assert expected.dtype == np.float32 and expected.shape == (FRAMES, 2)
    assert_same_scores(our_scores(model, features[1]), expected)
    # the running statistics were trained away from BatchNorm's identity, so the test above sees them
    assert not torch.allclose(model.bn1.running_var, torch.ones(HIDDEN))


def test_state_dict_and_safetensors_load_the_same_weights(reference, features, tmp_path):
    whole = load_classifier(reference[0])
    state = tmp_path / "state.pt"
    torch.save(whole.state_dict(), state)
    ours = tmp_path / "classifier.safetensors"
    save_classifier(whole, ours)
    bare = tmp_path / "bare.safetensors"  # without our metadata: eps is torch's default
    save_file({key: value for key, value in whole.state_dict().items()}, bare)
    expected = np.load(reference[1] / "probabilities.npy")
    for path in (state, ours, bare):
        assert_same_scores(our_scores(load_classifier(path, expect_input=INPUT), features[1]), expected)


def test_tensors_saved_on_cuda_load_without_cuda(features, tmp_path):
    path = made(tmp_path / "cuda.pth", "--location", "cuda:0", "--input", "16", "--hidden", "8")
    from virnucpro.models.classifier.whole_module import STAND_INS

    locations: list[str] = []  # what torch reads as each storage's location tag
    with torch.serialization.safe_globals(list(STAND_INS)):
        torch.load(path, weights_only=True, map_location=lambda storage, tag: locations.append(tag) or storage)
    assert locations and set(locations) == {"cuda:0"}
    if not torch.cuda.is_available():  # VirNucPro's own load fails on this machine
        failed = make(None, "--load", str(path))
        assert failed.returncode != 0 and "CUDA" in failed.stderr
    model = load_classifier(path)
    assert model.hidden_layer.weight.device.type == "cpu" and model.input_dim == 16


def test_eps_is_read_from_the_file(tmp_path, features):
    small = tmp_path / "features.pt"
    data = features[1][:300, :16].contiguous()
    torch.save({"ids": [f"c_chunk_1F{i}" for i in range(300)], "data": data}, small)
    path = made(
        tmp_path / "m.pth", "--input", "16", "--hidden", "8", "--eps", "0.25",
        "--features", str(small), "--results", str(tmp_path / "results"),
    )  # fmt: skip
    model = load_classifier(path)
    assert model.eps == 0.25
    assert_same_scores(our_scores(model, data), np.load(tmp_path / "results" / "probabilities.npy"))


def test_pickle_that_would_run_code_is_refused_with_nothing_run(tmp_path):
    target = tmp_path / "pwned"
    alive = tmp_path / "alive"  # the payload is live: plain unpickling runs it
    pickle.loads(pickle.dumps(MkdirPayload(alive)))
    assert alive.is_dir()
    whole = made(tmp_path / "500_model.pth", "--input", "16", "--hidden", "8", "--payload", str(target))
    bare = tmp_path / "bare.pth"
    torch.save({"hidden_layer.weight": torch.zeros(8, 16), "x": MkdirPayload(target)}, bare)
    code = eval_pickle(f"__import__('os').mkdir({str(target)!r})")
    legacy, plain = tmp_path / "legacy.pt", tmp_path / "plain.pkl"
    legacy.write_bytes(b"\x80\x02" + code)  # a protocol-2 pickle, as torch's pre-zip format starts
    plain.write_bytes(code)  # protocol 0: no torch file starts so, it is never unpickled
    cases = (
        (whole, "posix.mkdir"),
        (bare, "posix.mkdir"),
        (legacy, "unpickle eval, which was refused"),
        (plain, "not a torch file"),
    )
    for path, refused in cases:
        with pytest.raises(ValueError) as err:
            load_classifier(path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message and refused in message, message
        assert "weights_only=False" not in message
        assert not target.exists()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--nan", "'hidden_layer.weight' holds 1 NaN or infinite value(s), the first at index (3, 5)"),
        ("--extra-layer", "this MLPClassifier has submodules"),
        ("--batch-statistics", "MLPClassifier.bn1.track_running_stats is False, expected True"),
    ],
)
def test_bad_virnucpro_files_are_refused_in_one_line(tmp_path, option, expected):
    path = made(tmp_path / "m.pth", "--input", "16", "--hidden", "8", option)
    with pytest.raises(ValueError) as err:
        load_classifier(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value) and expected in str(err.value), str(err.value)


def good_state(inputs: int = 16, hidden: int = 8) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    shapes = {
        "hidden_layer.weight": (hidden, inputs),
        "hidden_layer.bias": (hidden,),
        "bn1.weight": (hidden,),
        "bn1.bias": (hidden,),
        "bn1.running_mean": (hidden,),
        "output_layer.weight": (2, hidden),
        "output_layer.bias": (2,),
    }
    state = {key: torch.randn(shape, generator=generator) for key, shape in shapes.items()}
    return state | {"bn1.running_var": torch.rand(hidden, generator=generator) + 0.5}


def broken(change: str) -> tuple[dict, str]:
    """A state dict with one defect, and what the refusal must say."""
    state = good_state()
    if change == "shape":
        state["bn1.running_mean"] = torch.zeros(9)
        return state, "'bn1.running_mean' has shape (9,), expected (8,)"
    if change == "missing":
        del state["output_layer.bias"]
        return state, "lacks ['output_layer.bias']"
    if change == "unknown":
        state["bn2.weight"] = torch.zeros(8)
        return state, "has unknown ['bn2.weight']"
    if change == "nan":
        state["output_layer.weight"][1, 2] = float("nan")
        return state, "'output_layer.weight' holds 1 NaN or infinite value(s), the first at index (1, 2)"
    if change == "classes":
        state["output_layer.weight"], state["output_layer.bias"] = torch.zeros(3, 8), torch.zeros(3)
        return state, "'output_layer.weight' has shape (3, 8), expected (2, 8)"
    if change == "dtype":
        state["bn1.weight"] = torch.ones(8, dtype=torch.int32)
        return state, "'bn1.weight' is a torch.int32 tensor of shape (8,), expected a dense float"
    if change == "variance":
        state["bn1.running_var"][0] = -1.0
        return state, "'bn1.running_var' has negative values"
    raise AssertionError(change)


@pytest.mark.parametrize("change", ["shape", "missing", "unknown", "nan", "classes", "dtype", "variance"])
@pytest.mark.parametrize("form", ["torch", "safetensors"])
def test_bad_state_is_refused_in_one_line(tmp_path, change, form):
    state, expected = broken(change)
    path = tmp_path / f"c.{form}"
    torch.save(state, path) if form == "torch" else save_file(state, path)
    with pytest.raises(ValueError) as err:
        load_classifier(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and expected in message, message


def test_input_size_must_match_the_embedding_models(tmp_path):
    path = tmp_path / "c.pt"
    torch.save(good_state(inputs=3000), path)
    assert load_classifier(path).input_dim == 3000
    with pytest.raises(ValueError, match=r"takes 3000 features per frame, but expect_input=3328") as err:
        load_classifier(path, expect_input=3328)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file"),
        (b"hello, not a model\n", "not a torch file (zip or pickle) nor safetensors"),
        (b"PK\x03\x04 truncated zip", "not a readable VirNucPro classifier"),
    ],
)
def test_other_files_are_refused_in_one_line(tmp_path, content, expected):
    path = tmp_path / "c.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(expected)) as err:
        load_classifier(path)
    assert "\n" not in str(err.value)


def test_random_classifier_is_labelled_and_round_trips(tmp_path):
    with pytest.warns(UserWarning, match="meaningless"):
        model = random_classifier(16, 8, seed=3)
    path = tmp_path / "demo.safetensors"
    save_classifier(model, path)
    with pytest.raises(FileExistsError):
        save_classifier(model, path)
    with pytest.warns(UserWarning, match="RANDOM"):
        again = load_classifier(path, expect_input=16)
    assert again.random
    features = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.scores(features), again.scores(features))
    with pytest.raises(RuntimeError, match="eval mode only"):
        again.train()


def test_softmax_scores_is_virnucpros_predict(tmp_path):
    """Our softmax on the logits equals predict()'s probabilities (its model an identity on the logits)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reference"))
    from virnucpro_prediction import predict

    logits = torch.tensor([[0.0, 0.0], [0.0, 100.0], [200.0, 0.0], [-20.0, 3.5], [1e-3, 0.0]])
    batches = [(logits, [f"f{i}" for i in range(len(logits))])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, labels, probabilities = predict(torch.nn.Identity(), batches, torch.device("cpu"))
    assert torch.equal(softmax_scores(logits), torch.from_numpy(np.stack(probabilities)))
    assert labels == ["others", "virus", "others", "virus", "others"]
