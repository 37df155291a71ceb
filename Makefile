# Loyalist — the two quick-start commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: demo test lint typecheck imports unit integration e2e bench bench-earn bench-clv bench-console install install-dev browser clean serve bench-jobs bench-stream bench-peak bench-import bench-spark bench-import-console

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==0.13.9"

install: $(UV)
	$(UV) sync --frozen --no-dev --python $(PYTHON)

# Under CI=true the Spark extra (PySpark, ~320 MB wheel) is installed too, so that the Spark
# engine's tests run (they fail, not skip, under CI without it); locally: SPARK=1 make install-dev.
SPARK_EXTRA := $(if $(filter true,$(CI))$(filter 1,$(SPARK)),--extra spark,)

install-dev: $(UV)
	$(UV) sync --frozen --python $(PYTHON) $(SPARK_EXTRA)

demo: install
	$(VENV)/bin/loyalist demo --serve

serve: install
	$(VENV)/bin/loyalist serve

browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@# Chinese glyphs for the screenshots the browser tests save (no web fonts: nothing loads from outside)
	@fc-list :lang=zh 2>/dev/null | grep -q . || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null; }

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: install-dev
	$(VENV)/bin/mypy

imports: install-dev
	$(VENV)/bin/lint-imports

test: install-dev browser lint typecheck imports
	bash scripts/run-tests.sh

bench: install-dev
	$(PY) benchmarks/bench_earn.py
	$(PY) benchmarks/bench_clv.py
	$(PY) benchmarks/bench_console.py
	$(PY) benchmarks/bench_jobs.py
	$(PY) benchmarks/bench_stream.py
	$(PY) benchmarks/bench_redeem_read.py

bench-earn: install-dev
	$(PY) benchmarks/bench_earn.py

bench-clv: install-dev
	$(PY) benchmarks/bench_clv.py

bench-console: install-dev
	$(PY) benchmarks/bench_console.py

bench-jobs: install-dev
	$(PY) benchmarks/bench_jobs.py

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache var

bench-stream: install-dev
	$(PY) benchmarks/bench_stream.py

bench-peak: install-dev
	$(PY) benchmarks/bench_peak.py

.PHONY: bench-pyfloor bench-flame
bench-pyfloor: install-dev
	$(PY) benchmarks/earn_pyfloor.py

bench-flame: install-dev
	$(PY) benchmarks/earn_flame.py

.PHONY: bench-redeem-read
bench-redeem-read: install-dev
	$(PY) benchmarks/bench_redeem_read.py $(if $(MODES),--mode $(MODES))

bench-import: install-dev
	$(PY) benchmarks/bench_import.py

# The console's import path (jobs) beside the CLI's, same run (ROWS=… to choose).
bench-import-console: install-dev
	$(PY) benchmarks/bench_import_console.py --rows $(or $(ROWS),10000)

# Spark vs the local engine per stage at growing sizes (SIZES=100000,1000000,... to choose).
bench-spark:
	SPARK=1 $(MAKE) install-dev
	$(PY) benchmarks/bench_spark.py $(if $(SIZES),--sizes $(SIZES),)
