# resi-unified-database: the single entry point for people and CI.
#
#   make setup     install what is missing (Debian packages, cargo-pgrx 0.18.1, pgrx init)
#   make build     build the workspace (debug)
#   make install   build the extension in release mode and install it into the system PostgreSQL 15
#   make test      the whole suite: unit tests, #[pg_test]s, end-to-end tests on a throwaway cluster
#   make test-faults  the loader's fault tests with a longer kill loop (30 SIGKILLs over 240 uploads; not in `make test`)
#   make test-citus   the Citus tests on a throwaway coordinator + 2 workers; builds Citus 13.2.2 from CITUS_SRC
#                     when it is missing (not in `make test`)
#   make demo      a private cluster with the extension, one loader pass over the sample uploads, the results
#   make lint      rustfmt check and clippy -D warnings
#   make release   release/: the native extension as a tarball of its files, the portable edition as a
#                  pg_tle install script and a plain migration (docs/hosted.md)
#   make bench     benchmarks against their baselines on a throwaway cluster, into bench/results.md (not in `make test`)
#   make fuzz      each property of resi_core/tests/props for FUZZ_SECONDS (default 600), release build (not in `make test`)
#
# As root everything runs directly; as a normal user, system packages and installing into
# PostgreSQL's directories use sudo (see README.md).

SHELL      := /bin/bash
PG_CONFIG  ?= /usr/lib/postgresql/15/bin/pg_config
CARGO      ?= cargo
SUDO_FLAG  := $(shell [ "$$(id -u)" = 0 ] || echo --sudo)
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR   ?= $(or $(TMPDIR),/tmp)/resi-demo-$(shell id -un)

# pgrx's test runner: initdb and postgres as the `postgres` OS user (initdb refuses root),
# installing the test build with sudo; its data directory must be writable by that user.
PGRX_TEST_ENV := CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA=$(or $(TMPDIR),/tmp)/resi-pgrx-test-$(shell id -un)

export PG_CONFIG

.PHONY: setup build install install-dev release test test-unit test-pg test-e2e test-faults test-citus demo demo-stop lint clean bench fuzz

setup:
	@scripts/setup

build: setup
	$(CARGO) build --locked --workspace

# What a DBA runs: release build, files into /usr/lib/postgresql/15/lib and /usr/share/postgresql/15/extension.
install: setup
	cd resi_pg && $(CARGO) pgrx install --release --pg-config $(PG_CONFIG) $(SUDO_FLAG)

# The debug build, installed for the end-to-end tests and the demo (faster to build), with the
# install scripts of earlier releases (sql/install/) so the upgrade test can create them.
install-dev: setup
	cd resi_pg && $(CARGO) pgrx install --pg-config $(PG_CONFIG) $(SUDO_FLAG)
	$(SUDO) install -m 644 sql/install/*.sql "$$($(PG_CONFIG) --sharedir)/extension/"

# The three packages of a release (docs/hosted.md), built from this checkout into release/.
RELEASE_DIR ?= release
release: setup
	cd resi_pg && $(CARGO) pgrx package --pg-config $(PG_CONFIG)
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)/native
	version=$$(sed -n 's/^default_version = .\(.*\).$$/\1/p' target/release/resi_pg-pg15/usr/share/postgresql/15/extension/resi_pg.control) && \
	    tar -C target/release/resi_pg-pg15 -czf $(RELEASE_DIR)/native/resi_pg-$$version-pg15-$$(uname -m).tar.gz .
	$(CARGO) run --locked --quiet -p resi-package -- --out $(RELEASE_DIR)
	@find $(RELEASE_DIR) -type f | sort

test: setup
	@$(MAKE) --no-print-directory test-unit test-pg test-e2e
	@echo "make test: all suites passed"

# Pure Rust: resi_core (consensus, hashing, keys, trust, rate limits), the loader's unit tests and
# the bench's (its report and helpers; `make bench` runs the measurements themselves).
test-unit:
	$(CARGO) test --locked -p resi_core
	$(CARGO) test --locked -p resi-loader --lib --bins
	$(CARGO) test --locked -p resi-bench --bins

# #[pg_test]s inside a backend (pgrx starts and stops its own cluster).
test-pg:
	cd resi_pg && $(PGRX_TEST_ENV) $(CARGO) pgrx test pg15

# tests/ against a throwaway cluster with the real (non-test) build installed; with pg_tle when
# it is installed or PG_TLE_SRC names its source tarball (scripts/pg-tle-install).
test-e2e: install-dev
	scripts/pg-tle-install
	scripts/e2e

# loader/tests/faults.rs with RESI_FAULT_KILLS=30 RESI_FAULT_OBJECTS=240 (override either) on a throwaway cluster.
test-faults: install-dev
	scripts/test-faults

# tests/tests/citus.rs, loader/tests/citus.rs and the Citus tests of loader/tests/faults.rs and archive.rs (issue 18)
# on a throwaway Citus cluster (scripts/citus-cluster: a coordinator and two
# workers on 127.0.0.1, on CITUS_PORT, +1, +2 when set, else free ports), removed afterwards, pass or fail.
# The single node they compare with is a plain database of the coordinator's cluster (or of
# RESI_TEST_DATABASE_URL's when set).
# Citus 13.2.2 is built first when it is not installed, from the tarball CITUS_SRC names (scripts/citus-install;
# without it the target says where to get it and fails).
CITUS_DIR ?= $(or $(TMPDIR),/tmp)/resi-citus-$(shell id -un)
test-citus: install-dev
	CITUS_SRC=$(CITUS_SRC) scripts/citus-install
	dir=$(CITUS_DIR)-$$$$; trap 'scripts/citus-cluster destroy "$$dir"' EXIT; \
	url=$$(scripts/citus-cluster start "$$dir" $(CITUS_PORT)) && echo "test-citus: coordinator at $$url" && \
	RESI_TEST_CITUS_URL=$$url RESI_TEST_DATABASE_URL=$${RESI_TEST_DATABASE_URL:-$$url} \
	RESI_LOG=$${RESI_LOG:-warn} PG_BIN=$$($(PG_CONFIG) --bindir) \
	    sh -c '$(CARGO) test --locked -p resi_e2e --test citus && $(CARGO) test --locked -p resi-loader --test citus && \
	           $(CARGO) test --locked -p resi-loader --test faults --test archive -- citus'

demo: setup install-dev
	$(CARGO) build --locked -p resi-loader
	DEMO_DIR=$(DEMO_DIR) scripts/demo

demo-stop:
	scripts/pg-cluster destroy $(DEMO_DIR)
	rm -rf $(DEMO_DIR)-uploads

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

# Benchmarks (issue 5): the release extension (with the frozen install scripts of earlier releases,
# row 1's "before") and loader, a throwaway cluster (scripts/bench),
# each measurement against its baseline in one run; BENCH_SCALE=1 by default (under 20 minutes on 2 cores).
bench: setup install
	$(SUDO) install -m 644 sql/install/*.sql "$$($(PG_CONFIG) --sharedir)/extension/"
	$(CARGO) build --locked --release -p resi-loader
	scripts/bench

# Fuzzing (issue 6): key parsing, row normalisation, the canonical form, the aggregates' state
# readers and round trips, one at a time, each for FUZZ_SECONDS; prints executions per property.
FUZZ_SECONDS ?= 600
fuzz:
	RESI_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --locked --release -p resi_core --test fuzz

clean:
	$(CARGO) clean
