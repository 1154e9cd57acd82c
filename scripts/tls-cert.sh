#!/usr/bin/env bash
# Makes the HAProxy TLS bundle (certificate + key, PEM) for the local pool
# when none exists: self-signed for localhost and 127.0.0.1, valid one
# year. Production puts its own certificate at HAPROXY_CERT instead.
# Prints the bundle's path.
set -euo pipefail
cd "$(dirname "$0")/.."
CERT=${HAPROXY_CERT:-.data/tls/haproxy.pem}
if [ ! -s "$CERT" ]; then
    dir=$(dirname "$CERT")
    mkdir -p "$dir"
    (
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
            -keyout "$dir/key.pem" -out "$dir/cert.pem" \
            -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            >/dev/null 2>&1
        cat "$dir/cert.pem" "$dir/key.pem" >"$CERT"
    )
fi
echo "$CERT"
