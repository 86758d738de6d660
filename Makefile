# The two commands: `make run` (the whole service, embedded default) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install install-dev npm browser clean-var

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

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads one).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "browser tests need Debian's chromium: sudo apt-get install chromium"; fi; }

run: install
	SYNTHORG_DEV=1 HOST=$(HOST) PORT=$(PORT) $(VPY) -m synthorg.embedded

test: install-dev npm browser
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VPY) -m ruff check .

clean-var:
	rm -rf var
