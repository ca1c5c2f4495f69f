# Segment's own client libraries, pinned, for the tests that send events to `serve` through
# them (tests/clients.rs): analytics-python (PyPI) in a private virtualenv and
# @segment/analytics-node (npm), both under ${CARGO_TARGET_DIR:-target}/clients. Installs
# Debian's nodejs and npm when node is missing.
#
# Source it, then call clients_install (exports S3ACTIONS_TEST_CLIENT_PYTHON, the
# virtualenv's python, and S3ACTIONS_TEST_CLIENT_NODE_PATH, the node_modules directory). A
# machine where they cannot be installed fails those tests with a message naming what is
# missing; they are never skipped.

ANALYTICS_PYTHON_VERSION=2.4.0
ANALYTICS_NODE_VERSION=3.1.0
CLIENTS_ROOT="${CARGO_TARGET_DIR:-$PWD/target}/clients"

clients_install() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "installing nodejs and npm (Debian) for Segment's analytics-node" >&2
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; } >&2; then
            echo "error: cannot install nodejs and npm: the client-library tests run analytics-node (apt-get install nodejs npm)" >&2
            return 1
        fi
    fi
    local venv="$CLIENTS_ROOT/venv"
    if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('segment-analytics-python') != '$ANALYTICS_PYTHON_VERSION')" 2>/dev/null; then
        echo "installing segment-analytics-python $ANALYTICS_PYTHON_VERSION into $venv" >&2
        python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "segment-analytics-python==$ANALYTICS_PYTHON_VERSION" || {
            echo "error: cannot install segment-analytics-python into $venv" >&2
            return 1
        }
    fi
    local node="$CLIENTS_ROOT/node"
    local installed
    installed=$(node -p "require('$node/node_modules/@segment/analytics-node/package.json').version" 2>/dev/null || true)
    if [ "$installed" != "$ANALYTICS_NODE_VERSION" ]; then
        echo "installing @segment/analytics-node $ANALYTICS_NODE_VERSION into $node" >&2
        mkdir -p "$node"
        (cd "$node" && [ -f package.json ] || echo '{"private": true}' > package.json) &&
            (cd "$node" && npm install --silent --no-audit --no-fund --save-exact \
                "@segment/analytics-node@$ANALYTICS_NODE_VERSION") >&2 || {
            echo "error: cannot install @segment/analytics-node into $node" >&2
            return 1
        }
    fi
    export S3ACTIONS_TEST_CLIENT_PYTHON="$venv/bin/python"
    export S3ACTIONS_TEST_CLIENT_NODE_PATH="$node/node_modules"
}
