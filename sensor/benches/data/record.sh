#!/bin/sh
# Records tls12-3certs.pcap, the capture the pipeline benches replay: one
# TLS 1.2 handshake (ECDHE-RSA) between openssl s_server and s_client, the
# server presenting a 3-certificate chain (leaf, intermediate, root) made
# here. Runs in a private network namespace on its loopback. Needs root,
# openssl, tcpdump, iproute2.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/tls12-3certs.pcap
ns=benchrec-$$
tmp=$(mktemp -d)
cleanup() {
    [ -n "${srv:-}" ] && kill "$srv" 2>/dev/null || true
    [ -n "${cap:-}" ] && kill "$cap" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
cd "$tmp"
days=3650
openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days $days \
    -subj "/C=DE/O=tls-sensor bench/CN=Bench Root CA" \
    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout int.key -out int.csr \
    -subj "/C=DE/O=tls-sensor bench/CN=Bench Intermediate CA" 2>/dev/null
printf 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > int.ext
openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -days $days \
    -extfile int.ext -out int.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr \
    -subj "/C=DE/O=tls-sensor bench/CN=bench.example" 2>/dev/null
printf 'subjectAltName=DNS:bench.example,DNS:www.bench.example,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -CAcreateserial -days $days \
    -extfile leaf.ext -out leaf.pem 2>/dev/null
cat int.pem root.pem > chain.pem

ip netns add "$ns"
ip -n "$ns" link set lo up
# Ethernet-sized segments, as on a real link.
ip -n "$ns" link set lo mtu 1500 gso_max_size 1500 gso_max_segs 1
ip netns exec "$ns" tcpdump -i lo -s 0 -U -w "$tmp/cap.pcap" 'tcp port 4433' 2>/dev/null &
cap=$!
ip netns exec "$ns" openssl s_server -accept 127.0.0.1:4433 -cert leaf.pem -key leaf.key \
    -cert_chain chain.pem -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -quiet -naccept 1 </dev/null >/dev/null 2>&1 &
srv=$!
sleep 1
echo Q | ip netns exec "$ns" openssl s_client -connect 127.0.0.1:4433 -servername bench.example \
    -tls1_2 -no_ign_eof >/dev/null 2>&1 || true
sleep 1
kill -INT "$cap"
wait "$cap" || true
cap=
cp "$tmp/cap.pcap" "$out"
echo "wrote $out"
