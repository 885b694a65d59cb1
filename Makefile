# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both run scripts/setup.sh first, which creates .venv (libtorch + reference software) and fetches
# the real scans into data/cache; it is idempotent and fast on a second run.
.PHONY: setup build demo test lint bench fuzz-smoke

setup:
	bash scripts/setup.sh

build: setup
	cargo build --release

demo: build
	./target/release/scorerecon demo --out out/demo

test: setup
	cargo test --release -- --test-threads=2

# A seeded run of each reader's fuzz target (fixed input counts, under a minute each), as CI runs it
# after the tests (docs/fuzzing.md).
fuzz-smoke: build
	bash fuzz/ci.sh

# What .ci/run checks before the tests.
lint: setup
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

bench: build
	cargo bench --bench operators
	cargo bench --bench fan_beam
	cargo bench --bench kspace_read
