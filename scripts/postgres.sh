# Real PostgreSQL server for the Reverse ETL tests: Debian's `postgresql` package
# (installed with apt-get when missing), a throwaway cluster under target/postgres on a
# free loopback port, with password authentication. The server refuses to run as root, so
# when the script runs as root the cluster belongs to the `postgres` user the package
# creates (or `nobody`).
#
# The server speaks TLS too, with a certificate from a test CA made here.
#
# Source it, then call postgres_start (exports S3ACTIONS_TEST_POSTGRES, a connection URL
# without the password, S3ACTIONS_TEST_POSTGRES_PASSWORD, and S3ACTIONS_TEST_POSTGRES_CA /
# S3ACTIONS_TEST_POSTGRES_OTHER_CA, the test CA's and an unrelated CA's certificates) and
# postgres_stop.

PG_STATE="$PWD/target/postgres"
PG_PASSWORD="s3actions-test-pw"

postgres_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

postgres_install() {
    if [ -n "$(postgres_bin)" ] && [ -x "$(postgres_bin)/initdb" ]; then
        return 0
    fi
    echo "installing Debian's postgresql package" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }; then
        echo "error: cannot install postgresql (apt-get install postgresql failed)" >&2
        return 1
    fi
}

# Runs a command as the cluster's owner.
postgres_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_OWNER" -- "$@"
    else
        "$@"
    fi
}

# A test CA and a server certificate it signs (for localhost and 127.0.0.1), and a second
# CA that signed nothing (for the refused-certificate test); openssl from Debian.
postgres_tls() {
    local tls="$PG_STATE/tls"
    command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; } \
        || { echo "error: cannot install openssl" >&2; return 1; }
    mkdir -p "$tls"
    for ca in ca other-ca; do
        openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=s3actions test $ca" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
            -keyout "$tls/$ca.key" -out "$tls/$ca.pem" >/dev/null 2>&1 || return 1
    done
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/server.key" \
        -out "$tls/server.csr" >/dev/null 2>&1 || return 1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
        -days 3 -extfile "$tls/server.ext" -out "$tls/server.crt" >/dev/null 2>&1 || return 1
    chmod 600 "$tls/server.key"
    chown -R "$PG_OWNER" "$tls"
}

postgres_start() {
    postgres_install || return 1
    local bin port
    bin=$(postgres_bin)
    PG_OWNER=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        if id postgres >/dev/null 2>&1; then PG_OWNER=postgres; else PG_OWNER=nobody; fi
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    rm -rf "$PG_STATE"
    mkdir -p "$PG_STATE"
    printf '%s\n' "$PG_PASSWORD" >"$PG_STATE/pwfile"
    chown -R "$PG_OWNER" "$PG_STATE"
    postgres_as_owner "$bin/initdb" -D "$PG_STATE/data" -U s3actions --pwfile="$PG_STATE/pwfile" \
        --auth=scram-sha-256 -E UTF8 --no-locale >"$PG_STATE/initdb.log" 2>&1 \
        || { cat "$PG_STATE/initdb.log" >&2; return 1; }
    postgres_tls || return 1
    postgres_as_owner "$bin/pg_ctl" -D "$PG_STATE/data" -l "$PG_STATE/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_STATE -c fsync=off -c ssl=on -c ssl_cert_file=$PG_STATE/tls/server.crt -c ssl_key_file=$PG_STATE/tls/server.key" start >/dev/null \
        || { cat "$PG_STATE/server.log" >&2; return 1; }
    export S3ACTIONS_TEST_POSTGRES="postgres://s3actions@127.0.0.1:$port/postgres"
    export S3ACTIONS_TEST_POSTGRES_PASSWORD="$PG_PASSWORD"
    export S3ACTIONS_TEST_POSTGRES_CA="$PG_STATE/tls/ca.pem"
    export S3ACTIONS_TEST_POSTGRES_OTHER_CA="$PG_STATE/tls/other-ca.pem"
    echo "postgres listening on 127.0.0.1:$port (cluster $PG_STATE/data)" >&2
}

postgres_stop() {
    if [ -d "$PG_STATE/data" ] && [ -n "${PG_OWNER:-}" ]; then
        postgres_as_owner "$(postgres_bin)/pg_ctl" -D "$PG_STATE/data" -m immediate stop >/dev/null 2>&1 || true
    fi
}
