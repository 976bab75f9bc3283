# Linegram developer commands (GNU make, Debian 12).  `make help` lists them.
#
#   make run    virtualenv, default settings in var/linegram.toml, the gateway and its web UI
#   make test   Debian test packages, lint, unit tests on 3.11 and 3.13, interop tests,
#               the Telegram leg against the simulated cloud
#
# Works as root or as a user with sudo (sudo is only used to install missing
# Debian packages).  Python 3.13 is optional: without it the 3.13 run is skipped.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PIP_VERSION := 25.3
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE := build/image/linegram-$(VERSION)-arm64.img.xz
# xz preset of make image: 6 gives the smallest download; make test uses 1 (about 40 s
# instead of 4 min on 2 cores, 215 MB instead of 176 MB): the image is the same otherwise.
XZ_LEVEL ?= 6
VENV := .venv
VENV313 := .venv313
CONFIG := var/linegram.toml
BENCH_ARGS ?=
TG_BENCH_ARGS ?=
CALLS_BENCH_ARGS ?=
DEMO_ARGS ?=

.PHONY: help deps run demo lint unit unit313 interop telegram telegram313 e2e webui hardware appliance image image-test screenshots bench test clean $(VENV) $(VENV313)

help:
	@echo "make run       start the gateway with $(CONFIG) (created with defaults if missing)"
	echo "make demo      the gateway on a simulated Telegram: a SIP call rings scripted members"
	echo "make test      deps + lint + unit + unit313 + interop + telegram + telegram313 + e2e + webui"
	echo "               + hardware + appliance + image + image-test"
	echo "make deps      install the missing Debian packages of tools/debian-packages.txt"
	echo "make lint      ruff check, ruff format --check, mypy --strict"
	echo "make unit      unit tests on Python 3.11     make unit313   the same on Python 3.13"
	echo "make interop   tests against sipp, baresip and kamailio"
	echo "make telegram  the Telegram leg against the simulated cloud, real ntgcalls media (netns)"
	echo "make telegram313  the same on Python 3.13"
	echo "make e2e       calls end to end: SIP peers + simulated members with real media (netns)"
	echo "make webui     the web UI in Debian's Chromium against a real gateway (netns)"
	echo "make hardware  LEDs, button and the local handset (gpiozero mock pins, ALSA file plugin)"
	echo "make appliance the systemd units (systemd-analyze verify) and the first-boot script"
	echo "make image     build/image/linegram-$(VERSION)-arm64.img.xz for the Raspberry Pi (root)"
	echo "make image-test  boot that image twice in qemu-system-aarch64 and check the appliance"
	echo "make screenshots  docs/screenshots/: the main pages at desktop and phone width"
	echo "make bench     benchmarks (bench/run.py, telegram.py, calls.py)     make clean     remove venvs and caches"

deps:
	@tools/ensure-debian-packages.sh

# A virtualenv for Python $(1) in directory $(2); rebuilt when pyproject.toml changes.
# The "run" Debian packages come first: python3.11 and its venv module, and what pyalsaaudio
# (an sdist with a C extension) builds with (gcc, Python headers, libasound2-dev).
define make-venv
	@tools/ensure-debian-packages.sh run
	py="$$(tools/find-python.sh $(1))"
	if [ -z "$$py" ]; then echo "python$(1) not found" >&2; exit 1; fi
	if ! $(2)/bin/python -c 'import sys; assert "%d.%d" % sys.version_info[:2] == "$(1)"' 2>/dev/null; then
	    echo "Creating $(2) with $$py"
	    rm -rf $(2)
	    "$$py" -m venv $(2)
	fi
	$(2)/bin/python -m pip install --disable-pip-version-check -q "pip==$(PIP_VERSION)"
	$(2)/bin/python -m pip install --disable-pip-version-check -q --progress-bar off \
	    -c tools/constraints.txt -e '.[test]'
	touch $(2)/.stamp
endef

$(VENV): $(VENV)/.stamp ; @:
$(VENV)/.stamp: pyproject.toml tools/constraints.txt
	$(call make-venv,3.11,$(VENV))

$(VENV313): $(VENV313)/.stamp ; @:
$(VENV313)/.stamp: pyproject.toml tools/constraints.txt
	$(call make-venv,3.13,$(VENV313))

# The gateway and the web UI (http://127.0.0.1:8080, [webui] in the settings), stopped together.
run: $(VENV)
	@if [ ! -f $(CONFIG) ]; then $(VENV)/bin/python -m gateway --config $(CONFIG) --init; fi
	$(VENV)/bin/python -m webui --config $(CONFIG) &
	webui=$$!
	trap 'kill $$webui 2>/dev/null; wait $$webui 2>/dev/null' EXIT
	$(VENV)/bin/python -m gateway --config $(CONFIG)

# Settings in var/demo/ (docs/simulation.md).  With a network interface besides loopback the
# gateway waits for your call; without one (containers) it runs in a private namespace
# (tools/in-netns.sh), sipp calls it, and the demo reports what happened.
demo: deps $(VENV)
	$(VENV)/bin/python tools/demo.py $(DEMO_ARGS)

lint: $(VENV)
	@rc=0
	$(VENV)/bin/ruff check . || rc=1
	$(VENV)/bin/ruff format --check . || rc=1
	$(VENV)/bin/mypy || rc=1
	exit $$rc

unit: $(VENV)
	$(VENV)/bin/pytest tests/unit -q

unit313:
	@if [ -z "$$(tools/find-python.sh 3.13)" ]; then
	    echo "NOTICE: python3.13 not found; skipping the Python 3.13 unit tests"
	    exit 0
	fi
	$(MAKE) $(VENV313)
	$(VENV313)/bin/pytest tests/unit -q

interop: deps $(VENV)
	$(VENV)/bin/pytest tests/interop -m interop -q

# Real WebRTC media needs a non-loopback interface: a private network namespace with a veth pair.
telegram: deps $(VENV)
	tools/in-netns.sh $(VENV)/bin/pytest tests/simcloud tests/telegram -q

telegram313: deps
	@if [ -z "$$(tools/find-python.sh 3.13)" ]; then
	    echo "NOTICE: python3.13 not found; skipping the Python 3.13 Telegram tests"
	    exit 0
	fi
	$(MAKE) $(VENV313)
	tools/in-netns.sh $(VENV313)/bin/pytest tests/simcloud tests/telegram -q

# Calls end to end: the gateway, SIP peers (sipp, baresip) and simulated members with real media.
e2e: deps $(VENV)
	tools/in-netns.sh $(VENV)/bin/pytest tests/e2e -q

# The web UI in Debian's Chromium (Playwright) against a real gateway on the simulated cloud.
webui: deps $(VENV)
	tools/in-netns.sh $(VENV)/bin/pytest tests/webui -q

# LEDs and button on gpiozero's mock pins, the local handset on ALSA's file plugin, through calls
# with real SIP peers and simulated members (netns).
hardware: deps $(VENV)
	tools/in-netns.sh $(VENV)/bin/pytest tests/hardware -q

# The systemd units (systemd-analyze verify), sd_notify, the first-boot script on a directory tree.
appliance: deps $(VENV)
	$(VENV)/bin/pytest tests/appliance -q

# The Raspberry Pi image (Debian bookworm arm64): see image/build.sh.  Needs root.
image: deps $(VENV)
	XZ_LEVEL=$(XZ_LEVEL) image/build.sh

# Boots $(IMAGE) in QEMU (built first when missing): see image/boot_test.py.
image-test: deps $(VENV)
	@if [ ! -f $(IMAGE) ]; then $(MAKE) image; fi
	$(VENV)/bin/python image/boot_test.py $(IMAGE)

# docs/screenshots/*.png: the main pages at desktop and phone width (shown in the README).
screenshots: deps $(VENV)
	tools/in-netns.sh $(VENV)/bin/pytest tests/webui/screenshots.py -q

# The benches run even if one fails; any failing fails the target.  bench/calls.py needs the
# bench-only extra (numpy, pesq: never a runtime dependency), installed here into $(VENV) only;
# pesq is built from its sdist, its build tools pinned by tools/constraints.txt too.
bench: deps $(VENV)
	@rc=0
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q --progress-bar off \
	    -c tools/constraints.txt --build-constraint tools/constraints.txt -e '.[bench]'
	if [ -f bench/run.py ]; then
	    $(VENV)/bin/python bench/run.py $(BENCH_ARGS) || rc=1
	else
	    echo "bench/run.py does not exist yet; nothing to run"
	fi
	$(VENV)/bin/python bench/telegram.py $(TG_BENCH_ARGS) || rc=1
	$(VENV)/bin/python bench/calls.py $(CALLS_BENCH_ARGS) || rc=1
	exit $$rc

# Runs every step even after a failure, so one run shows everything that is broken.
test:
	@results=(); failed=0
	for step in deps lint unit unit313 interop telegram telegram313 e2e webui hardware appliance image image-test; do
	    if [ $${step%313} != $$step ] && [ -z "$$(tools/find-python.sh 3.13)" ]; then
	        $(MAKE) $$step; results+=("$$step skipped"); continue
	    fi
	    if [ $$step = image-test ] && [[ " $${results[*]} " == *" image FAILED "* ]]; then
	        results+=("image-test not run (no image)"); continue
	    fi
	    if $(MAKE) $$step XZ_LEVEL=1; then results+=("$$step ok"); else results+=("$$step FAILED"); failed=1; fi
	done
	summary="$$(IFS=,; echo "$${results[*]}")"
	if [ $$failed = 0 ]; then echo "make test: PASSED ($${summary//,/, })"
	else echo "make test: FAILED ($${summary//,/, })"; fi
	exit $$failed

clean:
	rm -rf $(VENV) $(VENV313) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -not -path './var/*' -exec rm -rf {} +
