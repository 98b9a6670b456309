#!/usr/bin/env bash
# PyCam developer entry point. Sets everything up on a fresh Debian machine (idempotent), then:
#   scripts/run.sh demo [pycam demo options]   simulated station with the GUI (headless without a display)
#   scripts/run.sh test [pytest options]       the whole test suite (GUI tests run under Xvfb)
#   scripts/run.sh quick [pytest options]      the everyday subset: every test not marked slow
#   scripts/run.sh bench                        all benchmarks under benchmarks/ (JSON in benchmarks/results/)
#   scripts/run.sh setup                        only the set-up
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
APT_PACKAGES=(python3 python3-venv python3-tk xvfb xauth imagemagick xdotool libudunits2-0)

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

setup_apt() {
  command -v dpkg >/dev/null || return 0
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  # python3-tk/python3-venv are only needed when the interpreter comes from Debian
  if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

setup_venv() {
  local py=${PYTHON:-python3}
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV" >&2
    "$py" -m venv "$VENV"
  fi
  local stamp="$VENV/.setup-stamp" want
  want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)
  if [[ ! -f "$stamp" || $(cat "$stamp") != "$want" ]]; then
    echo "setup: installing Python packages (pinned, requirements-dev.txt)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r requirements-dev.txt
    "$VENV/bin/python" -m pip install -q --no-deps -e .
    echo "$want" > "$stamp"
  fi
}

setup() { setup_apt; setup_venv; }

cmd=${1:-help}; shift || true
case "$cmd" in
  setup) setup ;;
  demo)
    setup
    if [[ -n "${DISPLAY:-}" ]]; then exec "$VENV/bin/pycam" demo "$@"; fi
    echo "no DISPLAY: running the demo headless" >&2
    exec "$VENV/bin/pycam" demo --headless "$@" ;;
  test|quick)
    setup
    mkdir -p artifacts
    if [[ $cmd == quick ]]; then set -- -m "not slow" "$@"; fi
    set +e
    "$VENV/bin/python" -m pytest "$@"
    rc=$?
    set -e
    if [[ $rc -eq 5 ]]; then echo "test: pytest collected no tests: failing" >&2; exit 1; fi
    exit $rc ;;
  bench)
    setup
    mkdir -p benchmarks/results
    for b in benchmarks/*.py; do "$VENV/bin/python" "$b"; done ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
