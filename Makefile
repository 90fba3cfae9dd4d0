# One word for each thing a developer runs (docs/development.md).  PYTHON is
# the environment's interpreter: the checkout's .venv when there is one.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
BIN := $(dir $(PYTHON))
LINTED := lenet5 tests benchmarks csrc/build_ffi.py

.PHONY: test test-slow docs lint format sanitize werror ci

test:  ## the default pytest (slow cases left out): under 3 minutes
	$(PYTHON) -m pytest -q

test-slow:  ## the long cases: full-epoch goldens, kill-and-resume, extra builds, a wheel
	$(PYTHON) -m pytest -q -m slow

docs:  ## run every example of README.md and docs/*.md
	$(PYTHON) tests/run_doc_examples.py

lint:  ## ruff (rules and format) and mypy
	$(BIN)ruff check $(LINTED)
	$(BIN)ruff format --check $(LINTED)
	$(BIN)mypy

format:  ## format the code in place
	$(BIN)ruff format $(LINTED)

sanitize:  ## the C core under AddressSanitizer and UndefinedBehaviorSanitizer
	bash tests/sanitize.sh $(PYTHON)

werror:  ## the C core built with -Werror into a scratch folder
	LENET5_WERROR=1 $(PYTHON) csrc/build_ffi.py $$(mktemp -d) > /dev/null

ci:  ## everything CI runs, from a clean environment folder (.ci/run)
	bash .ci/run
