#!/usr/bin/env bash
# Makes a private CA and one certificate for trying Stampede's mTLS with openssl. The coordinator
# serves the certificate and every agent presents it: it carries both the server and the client
# usage, and the names agents dial.
#
#   bash deploy/make-certs.sh OUT_DIR [NAME...]
#
# NAMEs are the DNS names or IP addresses agents dial (default: coordinator localhost 127.0.0.1).
# Writes OUT_DIR/ca.crt, tls.crt and tls.key (the keys of the Secret the Helm chart and
# deploy/k8s mount) and OUT_DIR/ca.key, which signs more certificates and should stay offline.
#
# The files are made readable by every user, so that a container's non-root user (65532) can read
# a bind mount of them. That suits a trial on one machine; in production take the certificates from
# your PKI or cert-manager (see helm/stampede/README.md) and keep keys readable by their user only.
#
#   kubectl create secret generic stampede-tls --from-file=OUT_DIR/ca.crt \
#     --from-file=OUT_DIR/tls.crt --from-file=OUT_DIR/tls.key
set -euo pipefail

if (($# < 1)); then
  echo "usage: $0 OUT_DIR [NAME...]" >&2
  exit 2
fi
out="$1"
shift
names=("$@")
((${#names[@]} > 0)) || names=(coordinator localhost 127.0.0.1)
days="${STAMPEDE_CERT_DAYS:-30}"

san=""
for name in "${names[@]}"; do
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
    san+="${san:+,}IP:$name"
  else
    san+="${san:+,}DNS:$name"
  fi
done

mkdir -p "$out"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$out/ca.key" -out "$out/ca.crt" -days "$days" \
  -subj "/CN=stampede test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new "${ec[@]}" -keyout "$out/tls.key" -out "$out/tls.csr" \
  -subj "/CN=stampede" 2>/dev/null
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -out "$out/tls.crt" -days "$days" -extfile <(
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth,clientAuth" \
      "subjectAltName=$san"
  ) 2>/dev/null
rm -f "$out/tls.csr" "$out/ca.srl"
chmod 0755 "$out"
chmod 0644 "$out/ca.crt" "$out/tls.crt" "$out/tls.key"
chmod 0600 "$out/ca.key"
echo "wrote $out/ca.crt, $out/tls.crt and $out/tls.key for ${names[*]} (valid $days days)"
