# Segment's own client libraries, pinned, for the tests that send events to `serve` through
# them (tests/clients.rs): analytics-python (PyPI) in a private virtualenv, and
# @segment/analytics-node and @segment/analytics-next (Analytics.js, driven in Debian's
# Chromium by playwright-core) from npm, all under ${CARGO_TARGET_DIR:-target}/clients.
# Installs Debian's nodejs, npm and chromium when they are missing.
#
# Source it, then call clients_install (exports S3ACTIONS_TEST_CLIENT_PYTHON, the
# virtualenv's python, S3ACTIONS_TEST_CLIENT_NODE_PATH, the node_modules directory, and
# S3ACTIONS_TEST_CHROMIUM, the browser). A machine where they cannot be installed fails
# those tests with a message naming what is missing; they are never skipped.

ANALYTICS_PYTHON_VERSION=2.4.0
ANALYTICS_NODE_VERSION=3.1.0
ANALYTICS_NEXT_VERSION=1.84.3
PLAYWRIGHT_CORE_VERSION=1.65.2
CLIENTS_ROOT="${CARGO_TARGET_DIR:-$PWD/target}/clients"

clients_install() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "installing nodejs and npm (Debian) for Segment's analytics-node" >&2
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; } >&2; then
            echo "error: cannot install nodejs and npm: the client-library tests run analytics-node (apt-get install nodejs npm)" >&2
            return 1
        fi
    fi
    local chromium
    chromium=$(command -v chromium || true)
    if [ -z "$chromium" ]; then
        echo "installing chromium (Debian) for Analytics.js" >&2
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2; then
            echo "error: cannot install chromium: the client-library tests run Analytics.js in it (apt-get install chromium)" >&2
            return 1
        fi
        chromium=$(command -v chromium)
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
    local want="$ANALYTICS_NODE_VERSION $ANALYTICS_NEXT_VERSION $PLAYWRIGHT_CORE_VERSION"
    installed="$installed $(node -p "require('$node/node_modules/@segment/analytics-next/package.json').version" 2>/dev/null || true)"
    installed="$installed $(node -p "require('$node/node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
    if [ "$installed" != "$want" ]; then
        echo "installing @segment/analytics-node $ANALYTICS_NODE_VERSION, @segment/analytics-next $ANALYTICS_NEXT_VERSION and playwright-core $PLAYWRIGHT_CORE_VERSION into $node" >&2
        mkdir -p "$node"
        (cd "$node" && [ -f package.json ] || echo '{"private": true}' > package.json) &&
            (cd "$node" && npm install --silent --no-audit --no-fund --save-exact \
                "@segment/analytics-node@$ANALYTICS_NODE_VERSION" \
                "@segment/analytics-next@$ANALYTICS_NEXT_VERSION" \
                "playwright-core@$PLAYWRIGHT_CORE_VERSION") >&2 || {
            echo "error: cannot install the npm client libraries into $node" >&2
            return 1
        }
    fi
    export S3ACTIONS_TEST_CLIENT_PYTHON="$venv/bin/python"
    export S3ACTIONS_TEST_CLIENT_NODE_PATH="$node/node_modules"
    export S3ACTIONS_TEST_CHROMIUM="$chromium"
}
