# Independent readers for the file-format tests: pyarrow and DuckDB (PyPI, pinned) in a
# private virtualenv, and Debian's gpg and zstd command-line tools.
#
# Source it, then call readers_install (exports S3ACTIONS_TEST_PYTHON, the virtualenv's
# python). A machine where they cannot be installed fails the format tests with a message
# naming what is missing; they are never skipped.

PYARROW_VERSION=22.0.0
DUCKDB_VERSION=1.4.2
READERS_VENV="${S3ACTIONS_READERS_VENV:-$PWD/target/readers-venv}"

readers_install() {
    local missing=()
    command -v gpg >/dev/null 2>&1 || missing+=(gnupg)
    command -v zstd >/dev/null 2>&1 || missing+=(zstd)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} (Debian packages) for the format tests" >&2
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2; then
            echo "error: cannot install ${missing[*]}: the format tests read files back with gpg and zstd; install them (apt-get install ${missing[*]})" >&2
            return 1
        fi
    fi
    if ! { [ -x "$READERS_VENV/bin/python" ] \
        && "$READERS_VENV/bin/python" -c "import pyarrow, duckdb, sys; sys.exit(pyarrow.__version__ != '$PYARROW_VERSION' or duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; }; then
        echo "installing pyarrow $PYARROW_VERSION and duckdb $DUCKDB_VERSION into $READERS_VENV" >&2
        python3 -m venv "$READERS_VENV"
        "$READERS_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "pyarrow==$PYARROW_VERSION" "duckdb==$DUCKDB_VERSION" || {
            echo "error: cannot install pyarrow and duckdb into $READERS_VENV" >&2
            return 1
        }
    fi
    export S3ACTIONS_TEST_PYTHON="$READERS_VENV/bin/python"
}
