# Real Kafka-protocol broker for the consume tests: tansu (Apache-2.0, a Kafka-compatible
# broker written in Rust, from crates.io), pinned, built once into
# ${CARGO_TARGET_DIR:-target}/tansu (about 12 minutes on 2 cores; cached after that),
# started on a free loopback port with memory storage (nothing survives a restart of the
# broker). Also installs (Debian, apt-get, when missing) what the rdkafka crate's bundled
# librdkafka build needs: cmake, and the curl, OpenSSL and SASL headers.
#
# Source it, then call kafka_start (exports S3ACTIONS_TEST_KAFKA=127.0.0.1:PORT) and
# kafka_stop.

KAFKA_ROOT="$PWD"
TANSU_VERSION=0.6.0
TANSU_ROOT="${CARGO_TARGET_DIR:-$KAFKA_ROOT/target}/tansu"
KAFKA_STATE="${CARGO_TARGET_DIR:-$KAFKA_ROOT/target}/kafka"

kafka_tools() {
    # librdkafka's cmake build includes curl's header even without OIDC, and links
    # OpenSSL (TLS, SASL/SCRAM), Cyrus SASL and curl (OIDC) from the system.
    local missing=()
    command -v cmake >/dev/null || missing+=(cmake)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    [ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] \
        || ls /usr/include/*/curl/curl.h >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
    [ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
    [ -f /usr/include/sasl/sasl.h ] || missing+=(libsasl2-dev)
    [ "${#missing[@]}" = 0 ] && return 0
    echo "installing ${missing[*]} (Debian) for the rdkafka build and the Kafka tests" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2; then
        echo "error: cannot install ${missing[*]}: building librdkafka needs them (apt-get install ${missing[*]})" >&2
        return 1
    fi
}

kafka_install() {
    kafka_tools || return 1
    if [ -x "$TANSU_ROOT/bin/tansu" ]; then
        return 0
    fi
    echo "building tansu $TANSU_VERSION into $TANSU_ROOT (first run only, ~12 min on 2 cores)" >&2
    local start=$SECONDS
    if ! cargo install tansu --version "$TANSU_VERSION" --features dynostore --root "$TANSU_ROOT" --locked; then
        echo "error: cannot build tansu $TANSU_VERSION (cargo install tansu failed)" >&2
        return 1
    fi
    echo "built tansu in $((SECONDS - start)) s" >&2
}

kafka_start() {
    kafka_install || return 1
    mkdir -p "$KAFKA_STATE"
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$TANSU_ROOT/bin/tansu" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ \
        >"$KAFKA_STATE/broker.log" 2>&1 &
    KAFKA_PID=$!
    local ready=
    for _ in $(seq 1 100); do
        # Debian's kcat (librdkafka 2.0.2) cannot read tansu 0.6.0's ApiVersion answer, so
        # readiness is the listener accepting; the tests' own client (rdkafka) does the rest.
        if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5)' "$port" 2>/dev/null; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if [ -z "$ready" ]; then
        echo "error: tansu did not answer on 127.0.0.1:$port within 10 s; its log:" >&2
        cat "$KAFKA_STATE/broker.log" >&2
        kafka_stop
        return 1
    fi
    export S3ACTIONS_TEST_KAFKA="127.0.0.1:$port"
    echo "tansu $TANSU_VERSION listening on 127.0.0.1:$port (pid $KAFKA_PID)" >&2
}

kafka_stop() {
    if [ -n "${KAFKA_PID:-}" ]; then
        kill "$KAFKA_PID" 2>/dev/null || true
        wait "$KAFKA_PID" 2>/dev/null || true
        KAFKA_PID=
    fi
}
