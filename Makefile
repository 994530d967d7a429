# The README's two commands: `make demo` (the agent on the simulated belt) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
GSTREAMER_INSTALLED := $(VENV)/.installed-gstreamer

.PHONY: demo test lint bench clean system-deps

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/beltcam demo --config configs/simulated.yaml

lint: $(INSTALLED)
	$(BIN)/ruff check edge trainer calibration firmware_bridge tests benchmarks scripts
	$(BIN)/ruff format --check edge trainer calibration firmware_bridge tests benchmarks scripts
	$(BIN)/lint-imports --no-cache

# Debian packages the tests need: Chromium (the panel's browser tests, driven by Playwright),
# PostgreSQL's server binaries (the store is tested on a real server),
# libusb for pyrealsense2, GStreamer with its introspection data and what PyGObject is built against
# (kind: gstreamer), and GStreamer's RTSP server on Debian's python3 (an RTSP camera on loopback)
GSTREAMER_DEBS := python3-gi gir1.2-gst-rtsp-server-1.0 gir1.2-gst-plugins-base-1.0 \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	libgirepository1.0-dev libcairo2-dev
system-deps:
	@command -v chromium >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)
	@ldconfig -p | grep -q 'libusb-1.0.so.0 ' || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null)
	@dpkg -s $(GSTREAMER_DEBS) >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(GSTREAMER_DEBS) >/dev/null)

# PyGObject is compiled against the system's GLib, so it comes after the Debian packages
$(GSTREAMER_INSTALLED): $(INSTALLED) | system-deps
	$(BIN)/python -m pip install --quiet -e '.[gstreamer]'
	touch $(GSTREAMER_INSTALLED)

# pytest exits 5 when it collected nothing: that must never pass for green
test: $(INSTALLED) system-deps $(GSTREAMER_INSTALLED) lint
	$(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(INSTALLED)
	$(BIN)/python -m benchmarks.record
	$(BIN)/python -m benchmarks.sources
	$(BIN)/python -m benchmarks.segmentation
	$(BIN)/python -m benchmarks.train_speed
	$(BIN)/python -m benchmarks.calibration
	$(BIN)/python -m benchmarks.bridge
	$(BIN)/python -m benchmarks.faults
	$(BIN)/python -m benchmarks.inference
	$(BIN)/python -m benchmarks.live_threads
	$(BIN)/python -m benchmarks.endtoend

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
