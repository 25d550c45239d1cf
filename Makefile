# netcc: `make demo` sets up a fresh machine and runs the main job; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
APT_PACKAGES := clang llvm libbpf-dev libbpf1 bpftool iproute2 wireguard-tools wireguard-go \
	linux-libc-dev tcpdump iptables golang-go
# Only the tests need these: a browser to open `netcc review --format html` as a reviewer would;
# QEMU, busybox and kmod to boot a Debian kernel with wireguard.ko (tests/wireguard_vm);
# libcni (the library containerd and CRI-O run plugins with) and the reference plugins, to drive
# build/netcc-cni as a runtime would and chain plugins after it (tests/cni); a Prometheus server
# to scrape the lab's node daemons (tests/daemon/test_daemon_lab_metrics.py).
TEST_APT_PACKAGES := chromium qemu-system-x86 busybox-static kmod golang-github-appc-cni-dev \
	containernetworking-plugins prometheus
EXAMPLE ?= examples/shop.yaml
OUT ?= out/shop
PODS_EXAMPLE ?= examples/pods.yaml
PODS_OUT ?= out/pods

.PHONY: setup system-packages test-packages vm-kernel python-package cni demo test test-fast lint \
	golden bench clean

setup: system-packages python-package cni

system-packages test-packages: PACKAGES = $(if $(filter test-packages,$@),$(TEST_APT_PACKAGES),$(APT_PACKAGES))
system-packages test-packages:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "system packages present"; fi

python-package:
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test]'

# The CNI plugin (cni/, Go, standard library only): static, offline, and byte-identical from
# any checkout (no paths, build ID or VCS stamp in it). CNI_BIN names another output.
CNI_BIN ?= build/netcc-cni
cni: system-packages
	mkdir -p $(dir $(abspath $(CNI_BIN)))
	cd cni && CGO_ENABLED=0 GOPROXY=off GOFLAGS= go build -trimpath -buildvcs=false \
		-ldflags '-s -w -buildid=' -o $(abspath $(CNI_BIN)) .

demo: setup
	bash scripts/demo.sh $(EXAMPLE) $(OUT)
	bash scripts/lab-demo.sh $(EXAMPLE) $(OUT)
	bash scripts/pods-demo.sh $(PODS_EXAMPLE) $(PODS_OUT)
	bash scripts/app-demo.sh examples/app out/app
	bash scripts/wireguard-demo.sh $(EXAMPLE) $(OUT)-encrypted

# The Debian kernel the WireGuard kernel-backend test boots (cached in ~/.cache/netcc/vm-kernel).
vm-kernel: test-packages
	bash scripts/vm-kernel.sh

test: setup test-packages vm-kernel
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -ra

# Without the kernel tests (tests/conftest.py says which they are) and the slow ones: no root needed.
test-fast:
	$(PYTHON) -m pytest -q -m "not kernel and not slow"

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

# Regenerates every golden file: runs exactly the tests that compare against one (marked
# `golden` by their `golden` fixture, tests/support/golden.py). Review the diff before committing.
golden:
	NETCC_UPDATE_GOLDEN=1 $(PYTHON) -m pytest -q -p no:cacheprovider -m golden

# Re-runs the compile, classes and (as root) datapath benchmarks and says which figures moved from
# those recorded in bench/results/*.json (BENCHMARKS.md reports them; bench/moved.py --accept
# records new ones).
bench:
	$(PYTHON) bench/moved.py

clean:
	rm -rf out build *.egg-info .pytest_cache
