"""A classifier named for one chunk size (VirNucPro's 300_model.pth, 500_model.pth) is refused with another."""

from __future__ import annotations

import pytest

from virnucpro.tasks.predict import check_chunk_size, classifier_chunk_size


@pytest.mark.parametrize(
    ("name", "size"),
    [("500_model.pth", 500), ("/models/300_model.pth", 300), ("model.pth", None), ("my_500_model.pth", None)],
)
def test_chunk_size_from_virnucpros_names(name, size):
    assert classifier_chunk_size(name) == size


def test_mismatch_is_refused_naming_both(recwarn):
    check_chunk_size("/m/500_model.pth", 500)
    assert not recwarn.list
    with pytest.raises(ValueError) as err:
        check_chunk_size("/m/300_model.pth", 500)
    message = str(err.value)
    assert "for 300 bp chunks, but chunk_size (CLI: --chunk-size) is 500" in message and "500_model.pth" in message
    with pytest.raises(ValueError, match=r"chunk_size \(CLI: --chunk-size\) is 400; use 500 bp chunks$"):
        check_chunk_size("/m/500_model.pth", 400)


def test_a_name_that_does_not_say_is_warned_about_with_the_size_used():
    with pytest.warns(UserWarning, match=r"classifier\.safetensors: its name does not say .* it scores 400 bp chunks"):
        check_chunk_size("/m/classifier.safetensors", 400)
