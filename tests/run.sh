#!/usr/bin/env bash
# The project's test command (README: ./tests/run.sh), also what CI runs (.ci/run).
#
# Idempotent; works on a fresh Debian machine as root: installs what the tests need, builds the
# workspace (debug), checks formatting and clippy, runs the Rust tests and the end-to-end suite
# (tests/e2e, pytest driving the real `openkvs` binary with boto3 and the AWS CLI).
#
# Environment:
#   OPENKVS_SKIP_INSTALL=1   skip apt-get and pip (fast local reruns)
#   PYTEST_ARGS="..."        extra arguments for pytest, e.g. PYTEST_ARGS="-k auth -x"
#
# Prints the time of each phase and exits non-zero if any phase failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages the tests need. Other issues append here (ffmpeg, gstreamer, chromium, ...).
APT_PACKAGES=(
  python3
  python3-venv
  # real producers and media inspection for the ingest tests (tests/e2e/test_ingest_*.py)
  ffmpeg
  gstreamer1.0-tools
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly
  gstreamer1.0-libav
  mkvtoolnix
  # TURN client for the embedded TURN server test (tests/e2e/test_signaling.py)
  coturn
  # headless browser for hls.js / dash.js playback (tests/e2e/test_playback_browser.py,
  # tests/node/playback.test.mjs; playwright-core drives /usr/bin/chromium, no browser download)
  chromium
  # signaling between nodes (hub = "redis"): tests/e2e/test_scaleout_signaling.py starts its own
  redis-server
)
# PostgreSQL for the scale-out tests (crates/store/tests, tests/e2e/test_scaleout.py start their
# own server with initdb/pg_ctl); Debian's only if no initdb is installed (the CI image has one).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  APT_PACKAGES+=(postgresql)
fi
# Node runs the KVS WebRTC JS SDK signaling tests (tests/node); Debian's only if none is installed.
if ! command -v node >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs npm)
fi

VENV="$ROOT/.venv"
OUT="$ROOT/tests/out"
mkdir -p "$OUT"

SUMMARY=()
FAILED=0
TOTAL_START=$SECONDS

# phase NAME CMD...: run CMD, print its duration, remember the outcome. Returns CMD's status.
phase() {
  local name=$1
  shift
  local start=$SECONDS rc=0
  echo
  echo "==> [$name] $*"
  "$@" || rc=$?
  local took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("$(printf '  %-8s %-10s %5ss' ok "$name" "$took")")
    echo "<== [$name] ok (${took}s)"
  else
    SUMMARY+=("$(printf '  %-8s %-10s %5ss  (exit %s)' FAILED "$name" "$took" "$rc")")
    echo "<== [$name] FAILED with exit code $rc (${took}s)"
    FAILED=1
  fi
  return "$rc"
}

finish() {
  echo
  echo "==> summary (total $((SECONDS - TOTAL_START))s)"
  printf '%s\n' "${SUMMARY[@]}"
  if [ -s "$OUT/pytest-summary.txt" ]; then
    # pytest's closing line, repeated last so that it is the last thing printed
    cat "$OUT/pytest-summary.txt"
  fi
  if [ "$FAILED" -ne 0 ]; then
    echo "tests/run.sh: FAILED"
    exit 1
  fi
  echo "tests/run.sh: all phases passed"
  exit 0
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "need root (or sudo) to run: $*" >&2
    return 1
  fi
}

install_apt() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "not a Debian system (no dpkg-query): install by hand: ${APT_PACKAGES[*]}"
    return 0
  fi
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
      # A python3 that already makes venvs with pip (e.g. pyenv's) needs no Debian python.
      if [[ "$p" == python3 || "$p" == python3-venv ]] &&
        python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        continue
      fi
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "apt: nothing to install (${APT_PACKAGES[*]})"
    return 0
  fi
  echo "apt: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# tests/node: the KVS WebRTC JS SDK and AWS SDK v3 from the committed package-lock.json.
install_node() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found; the Node signaling test will fail"
    return 1
  fi
  local stamp="tests/node/node_modules/.openkvs-lock.sha256" want
  want="$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
    echo "npm: tests/node/package-lock.json unchanged, nothing to install"
    return 0
  fi
  (cd tests/node && npm ci --legacy-peer-deps --no-audit --no-fund) || return
  echo "$want" >"$stamp"
}

# web/: the viewer page's npm packages (hls.js), served by `openkvs serve` from web/node_modules.
install_web() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found; the viewer page cannot play HLS and tests/e2e/test_web.py will fail"
    return 1
  fi
  local stamp="web/node_modules/.openkvs-lock.sha256" want
  want="$(sha256sum web/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
    echo "npm: web/package-lock.json unchanged, nothing to install"
    return 0
  fi
  npm ci --prefix web --no-audit --no-fund || return
  echo "$want" >"$stamp"
}

install_venv() {
  if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "venv: $VENV is broken, recreating"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.openkvs-tests-requirements.sha256" want
  want="$(sha256sum tests/requirements.txt | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ] &&
    "$VENV/bin/python" -c 'import boto3, pytest, requests, awscli, moto, yaml' >/dev/null 2>&1; then
    echo "pip: tests/requirements.txt unchanged, nothing to install"
    return 0
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
  echo "$want" >"$stamp"
  "$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null |
    grep -iE '^(boto3|botocore|awscli|pytest|requests|moto) ' || true
}

rust_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features --no-fail-fast --no-tests=warn
  else
    echo "cargo-nextest not found; falling back to cargo test"
    cargo test --workspace --all-features --no-fail-fast
  fi
}

e2e_tests() {
  local py
  if [ -x "$VENV/bin/python" ]; then
    py="$VENV/bin/python"
  else
    py="python3"
  fi
  # Put the venv's `aws` first on PATH for the CLI tests.
  local rc
  rm -f "$OUT/pytest.rc"
  {
    # shellcheck disable=SC2086 # PYTEST_ARGS is split on purpose
    PATH="$(dirname "$py"):$PATH" "$py" -m pytest tests/e2e -q ${PYTEST_ARGS:-}
    echo $? >"$OUT/pytest.rc"
  } 2>&1 | tee "$OUT/pytest.log"
  rc="$(cat "$OUT/pytest.rc" 2>/dev/null || echo 1)"
  grep -E '^(=+ )?[0-9]+ (passed|failed|error|errors|skipped)|no tests ran' "$OUT/pytest.log" |
    tail -n 1 | sed -e 's/^=* *//' -e 's/ *=*$//' >"$OUT/pytest-summary.txt" || true
  return "$rc"
}

# The sans-IO core crates must not pull in an async runtime, HTTP stack or filesystem layer
# (STYLE.md section 1).
layering_check() {
  local c bad=0
  for c in openkvs-core openkvs-mkv openkvs-signaling openkvs-sigv4 openkvs-ts openkvs-manifest openkvs-mp4; do
    if cargo tree -p "$c" -e normal --prefix none 2>/dev/null | grep -qE '^(tokio|hyper|axum|rusqlite) '; then
      echo "$c depends on tokio/hyper/axum/rusqlite:"
      cargo tree -p "$c" -e normal -i tokio 2>/dev/null | head -5 || true
      bad=1
    else
      echo "$c: no tokio/hyper/axum/rusqlite"
    fi
  done
  return "$bad"
}

# Fuzz targets are built (not run) on the stable toolchain: libfuzzer-sys compiles there; a real
# coverage-guided run needs the sancov flags (crates/fuzz/README.md; RELIABILITY.md has results).
fuzz_build() {
  CARGO_TARGET_DIR="$ROOT/target/fuzz-build" cargo build --manifest-path crates/fuzz/Cargo.toml --bins || return
  # A short smoke run of each target (4 s or 500,000 inputs) over a corpus seeded from samples/ and
  # crates/fuzz/seeds/ (no coverage instrumentation in this build: this proves the targets run
  # and holds their assertions on the seeds and random mutations; the long runs do the search).
  local t corpus
  for t in mkv_parse mkv_parse_split putmedia_session signaling_message sigv4_verify mp4_mux ts_mux; do
    corpus="$OUT/fuzz-corpus/$t"
    mkdir -p "$corpus"
    case "$t" in
      signaling_message | sigv4_verify) cp crates/fuzz/seeds/"$t"/* "$corpus/" ;;
      *) cp samples/*.mkv "$corpus/" ;;
    esac
    "$ROOT/target/fuzz-build/debug/$t" -runs=500000 -max_total_time=4 "$corpus" 2>&1 | tail -n 1 || return
  done
}

rm -f "$OUT/pytest-summary.txt"

if [ "${OPENKVS_SKIP_INSTALL:-0}" = "1" ]; then
  echo "OPENKVS_SKIP_INSTALL=1: skipping apt-get and pip"
else
  phase apt install_apt || finish
  phase pip install_venv || finish
  phase npm install_node || true
fi
# The viewer page's own packages are part of the product (README quick start), so they are
# installed even with OPENKVS_SKIP_INSTALL=1.
phase npm-web install_web || true

# --all-features: the scale-out backends (openkvs-store `postgres`, `s3`; openkvs-server the
# same) are built, linted and tested against real PostgreSQL and moto servers, which the tests
# start themselves; OPENKVS_REQUIRE_SCALEOUT=1 turns a missing server binary into a failure
# instead of a skip.
export OPENKVS_REQUIRE_SCALEOUT=1
phase build cargo build --workspace --all-targets --all-features || finish
phase fmt cargo fmt --all -- --check || true
phase clippy cargo clippy --workspace --all-targets --all-features -- -D warnings || true
phase layering layering_check || true
phase fuzz-build fuzz_build || true
phase cargo-test rust_tests || true
phase e2e e2e_tests || true

finish
