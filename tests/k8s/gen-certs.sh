#!/bin/sh
# Test PKI for the Kubernetes API stub, generated at test time into DIR:
#   ca.crt/ca.key            the cluster CA
#   server.crt/server.key    the stub's certificate (127.0.0.1, localhost)
#   client.crt/client.key    a client certificate, CN=cert-user
#   other-ca.crt             an unrelated CA (for TLS failures)
set -eu
dir=$1
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj "/CN=envd-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

key server.key
openssl req -new -key server.key -out server.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
    -days 2 -extfile server.ext 2>/dev/null

key client.key
openssl req -new -key client.key -out client.csr -subj "/O=envd-testers/CN=cert-user"
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt \
    -days 2 -extfile client.ext 2>/dev/null

key other-ca.key
openssl req -x509 -new -key other-ca.key -out other-ca.crt -days 2 -subj "/CN=other-ca" \
    -addext "basicConstraints=critical,CA:TRUE"
rm -f ./*.csr ./*.ext ./*.srl
