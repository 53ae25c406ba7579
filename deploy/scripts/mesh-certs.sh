#!/usr/bin/env bash
# Makes a mesh CA and one certificate per component for mTLS between the mesh's hops.
# Usage: deploy/scripts/mesh-certs.sh DIR NAME...   e.g. deploy/scripts/mesh-certs.sh deploy/certs \
#          edge canvas payments pharmacy-routing scheduling notifications
# Writes DIR/ca.pem and DIR/ca-key.pem (kept only if DIR has none yet, so re-running adds or renews
# components under the same CA), and DIR/NAME.pem and DIR/NAME-key.pem for each NAME. Each
# certificate names NAME (the host peers dial), localhost and 127.0.0.1 (the container's own
# `healthcheck`), serves and calls (serverAuth and clientAuth), and lasts DAYS (default 90) days.
# For production keep the CA key offline or use a private CA service; this script is for compose
# and for staging.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
dir=$1; shift
days=${DAYS:-90}
mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=era mesh CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
fi
for name in "$@"; do
  case "$name" in *[!a-z0-9.-]*|'') echo "not a host name: $name" >&2; exit 2;; esac
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$dir/$name-key.pem" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -days "$days" -out "$dir/$name.pem" \
    -extfile <(printf '%s\n' \
      "subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1" \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth,clientAuth") 2>/dev/null
  rm -f "$dir/$name.csr"
done
rm -f "$dir/ca.srl"
# The containers run as an unprivileged user: certificates and component keys must be readable.
chmod 644 "$dir"/*.pem
chmod 600 "$dir/ca-key.pem"
echo "mesh certificates in $dir: ca.pem and $(printf '%s.pem ' "$@")"
