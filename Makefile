# Two commands do all the set-up on a fresh machine:
#   make demo   embeds the bundled example proteins, and classifies the bundled contigs as VirNucPro
#               does (random weights and a random classifier: MEANINGLESS, for trying the tool only)
#   make test   runs the test suite (CPU; GPU tests skip without CUDA)
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch that this machine keeps on disk; a GPU machine keeps the torch it has.
TORCH ?= torch==2.13.0

.PHONY: demo test
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/virnucpro embed examples/data/MIIJ01000039.single.faa.gz -o out/example.h5 --parents \
		--model random:esm2_t6_8M_UR50D --overwrite
	@echo "--- virnucpro predict with RANDOM models and a RANDOM classifier: the calls are MEANINGLESS (a demo) ---"
	$(PY) examples/make_demo_models.py out/demo_models
	$(VENV)/bin/virnucpro predict examples/data/KK037166.fna.gz examples/data/SRR492066.fna.gz \
		-o out/demo_prediction --parents --overwrite --chunk-size 500 --model random:esm2_t6_8M_UR50D \
		--dnabert out/demo_models/dnabert-tiny --classifier out/demo_models/500_random_classifier.safetensors
	@echo "--- out/demo_prediction holds MEANINGLESS calls of random models (real runs: README, Classify DNA) ---"

test: $(VENV)/.installed
	$(PY) -m pytest -q
