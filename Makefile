# The two commands: `make run` (the whole service, embedded default) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install install-dev npm system-packages clean-var

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip

# Reinstall only when a requirements file changes.
$(VENV)/.base-installed: requirements/base.txt | $(VPY)
	$(VPY) -m pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: requirements/base.txt requirements/dev.txt | $(VPY)
	$(VPY) -m pip install --quiet -r requirements/dev.txt
	touch $(VENV)/.base-installed $@

install: $(VENV)/.base-installed
install-dev: $(VENV)/.dev-installed

# npm packages the tests need (real peers), pinned by package.json + package-lock.json.
npm:
	@if [ -f tests/peers/package-lock.json ]; then \
		cd tests/peers && npm ci --no-audit --no-fund --loglevel=error; fi

# Debian's packages the tests run as real peers (Chromium for the browser tests, nginx, Prometheus,
# RabbitMQ), installed when missing; Playwright drives Debian's Chromium and never downloads one.
system-packages:
	@bash .ci/system-packages

run: install
	SYNTHORG_DEV=1 HOST=$(HOST) PORT=$(PORT) $(VPY) -m synthorg.embedded

test: install-dev npm system-packages
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VPY) -m ruff check .

clean-var:
	rm -rf var
