# Real S3 + STS + IAM server for the upload tests: moto's server from PyPI, pinned,
# installed into a private virtualenv, started on a free loopback port with request
# authentication enforced, then given a bucket, users, roles and policies.
#
# Source it, then call moto_start (exports S3ACTIONS_TEST_MOTO) and moto_stop.

MOTO_VERSION=5.2.5
MOTO_VENV="${S3ACTIONS_MOTO_VENV:-$PWD/target/moto-venv}"
MOTO_STATE="$PWD/target/moto"

moto_install() {
    if [ -x "$MOTO_VENV/bin/moto_server" ] \
        && "$MOTO_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
        return 0
    fi
    echo "installing moto $MOTO_VERSION into $MOTO_VENV" >&2
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check \
        "moto[s3,iam,sts]==$MOTO_VERSION" "flask==3.1.3" "flask-cors==6.0.5"
}

moto_start() {
    moto_install
    mkdir -p "$MOTO_STATE"
    local port
    port=$("$MOTO_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # The first 3 requests are unauthenticated: they create the admin user the bootstrap
    # uses for everything else. From then on moto checks signatures and IAM policies.
    INITIAL_NO_AUTH_ACTION_COUNT=3 "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" \
        >"$MOTO_STATE/server.log" 2>&1 &
    MOTO_PID=$!
    local url="http://127.0.0.1:$port"
    for _ in $(seq 1 100); do
        if "$MOTO_VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$url/moto-api/')" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    "$MOTO_VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/moto_bootstrap.py" "$url" "$MOTO_STATE/env.json"
    export S3ACTIONS_TEST_MOTO="$MOTO_STATE/env.json"
    echo "moto $MOTO_VERSION listening on $url (pid $MOTO_PID)" >&2
}

moto_stop() {
    if [ -n "${MOTO_PID:-}" ]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=
    fi
}
