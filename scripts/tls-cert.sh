#!/usr/bin/env bash
# Makes the HAProxy TLS bundle for the local pool when none exists: a local
# certificate authority (ca.pem, what clients trust) and a server
# certificate for localhost and 127.0.0.1 signed by it, valid one year.
# HAProxy gets server certificate + key in one file (HAPROXY_CERT).
# Production puts its own bundle at HAPROXY_CERT instead. Prints the
# bundle's path; the CA is ca.pem next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
CERT=${HAPROXY_CERT:-.data/tls/haproxy.pem}
if [ ! -s "$CERT" ]; then
    dir=$(dirname "$CERT")
    mkdir -p "$dir"
    (
        umask 077
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 365 -keyout ca.key -out ca.pem \
            -subj "/CN=Fechatter local CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            >/dev/null 2>&1
        openssl req -newkey rsa:2048 -nodes -keyout key.pem -out server.csr -subj /CN=localhost \
            >/dev/null 2>&1
        printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
            -extfile server.ext -out cert.pem >/dev/null 2>&1
        # The CA signs this one certificate only: its key is not kept, so
        # trusting ca.pem trusts nothing else.
        rm -f server.csr server.ext ca.srl ca.key
        cat cert.pem key.pem >"$(basename "$CERT")"
        chmod 644 ca.pem cert.pem
    )
fi
echo "$CERT"
