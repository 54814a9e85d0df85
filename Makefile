# Two entry points: `make serve` and `make test`. RUNTIME=gpu installs onnxruntime-gpu instead.
PYTHON ?= python3
VENV ?= .venv
RUNTIME ?= cpu
# Where `make serve` listens: this machine only unless HOST=0.0.0.0 (every network interface) says otherwise.
HOST ?= 127.0.0.1
PORT ?= 3000
BIN := $(VENV)/bin
OPENCV := opencv-python-headless

.PHONY: serve test install install-dev bento image clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[$(RUNTIME)]'
	touch $@

$(VENV)/.installed-dev-$(RUNTIME): pyproject.toml $(VENV)/.installed-$(RUNTIME)
	$(BIN)/pip install -q -e '.[$(RUNTIME),dev]'
	@# insightface depends on the GUI build of OpenCV (needs libGL); both builds share the cv2
	@# folder, so remove both and put the headless one back.
	$(BIN)/pip uninstall -q -y opencv-python $(OPENCV)
	$(BIN)/pip install -q --no-deps $(OPENCV)
	$(BIN)/python -c "import cv2, onnxruntime, bentoml, insightface; print('cv2', cv2.__version__, 'ok')"
	touch $@

install: $(VENV)/.installed-$(RUNTIME)
install-dev: $(VENV)/.installed-dev-$(RUNTIME)

# Missing model files are downloaded first once the licence is accepted (at the terminal, or with
# SWAPAROONY_ACCEPT_MODEL_LICENCE=1); without them the service still starts, answers 503 and says what to do.
# BentoML's start-up line names `localhost` whenever it listens on 0.0.0.0, so that case says so itself.
serve: install
	@$(BIN)/swaparoony models ensure || echo "Serving without the model files: every API answers 503 until you run" \
	  "'$(BIN)/swaparoony models pull' (or 'models import --from DIR' for files you brought) and then 'make serve' again." >&2
	@case "$(HOST)" in 0.0.0.0|::) echo "Listening on every network interface, port $(PORT): other machines reach it" \
	  "at this machine's address (BentoML's line below names only localhost)." >&2;; esac
	$(BIN)/bentoml serve service:Swaparoony --host $(HOST) --port $(PORT)

# mypy first (its config is in pyproject.toml): type hints that do not tell the truth fail the run.
test: install-dev
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

# The Bento (GPU on CUDA 12, drivers 525.60.13+: bentofile.yaml; GPU on CUDA 13, drivers 580.65.06+:
# BENTOFILE=bentofile.cuda13.yaml; CPU: BENTOFILE=bentofile.cpu.yaml), with the models from the store.
# It refuses to build without them (an image without models answers 503 everywhere) unless
# BENTO_WITHOUT_MODELS=1 says that is meant (for models mounted from a volume or a data connection).
BENTOFILE ?= bentofile.yaml
bento: install
	@if [ "$(BENTO_WITHOUT_MODELS)" != 1 ]; then \
	  $(BIN)/python -c "import bento_models, sys; sys.exit(bento_models.stored_dir() is None)" || { \
	    echo "The BentoML model store has no swaparoony-models: run 'swaparoony models pull' (or 'import') first," >&2; \
	    echo "or set BENTO_WITHOUT_MODELS=1 to build an image that reads its models from SWAPAROONY_MODELS_DIR." >&2; \
	    exit 1; }; \
	fi
	$(BIN)/bentoml build -f $(BENTOFILE) .

# An OCI image of the latest Bento, built offline with debootstrap and buildah (as root).
IMAGE ?= swaparoony:latest
image: install
	PYTHON=$(BIN)/python image/build.sh $$(sed -n 's/^name: //p' $(BENTOFILE)):latest $(IMAGE)

clean:
	rm -rf $(VENV)
