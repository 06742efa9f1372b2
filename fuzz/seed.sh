#!/bin/sh
# Builds the fuzz corpora (fuzz/corpus/<target>, git-ignored) from capture
# files: the shared fixtures next to the repository when present, the
# project's own test captures, and the small seeds committed in fuzz/seeds.
# Needs tshark and python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
corpus="$here/corpus"
mkdir -p "$corpus/tls_stream" "$corpus/certificate" "$corpus/pcap" "$corpus/decode"

for t in tls_stream certificate pcap decode; do
    [ -d "$here/seeds/$t" ] && cp "$here/seeds/$t"/* "$corpus/$t/" 2>/dev/null || true
done

captures=$(find "$root/../shared/fixtures/tls" "$root/tests/data" "$root/sensor/tests/data" \
    -name '*.pcap' -o -name '*.pcapng' 2>/dev/null | sort || true)
[ -n "$captures" ] || { echo "seed.sh: no captures found" >&2; exit 0; }

for f in $captures; do
    cp "$f" "$corpus/pcap/$(basename "$f")"
    # The first frames of each capture, behind a link-type selector byte
    # (0: Ethernet, the link type of nearly all of them).
    python3 -c '
import hashlib, os, struct, sys
path, out = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
frames = []
if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
    link = struct.unpack("<I", data[20:24])[0]
    at = 24
    while at + 16 <= len(data) and len(frames) < 40:
        incl = struct.unpack("<I", data[at + 8:at + 12])[0]
        frames.append(data[at + 16:at + 16 + incl])
        at += 16 + incl
    sel = {1: 0, 101: 1, 12: 2, 228: 3, 229: 4, 0: 5, 108: 6, 113: 7, 276: 8}.get(link)
    if sel is not None:
        for fr in frames:
            blob = bytes([sel]) + fr
            open(os.path.join(out, hashlib.sha1(blob).hexdigest()), "wb").write(blob)
' "$f" "$corpus/decode"
    # One line per TCP segment with payload: stream, source address, port, payload hex.
    tshark -r "$f" -Y 'tcp.len > 0 && !tcp.analysis.retransmission' -T fields \
        -e tcp.stream -e ip.src -e ipv6.src -e tcp.srcport -e tcp.payload 2>/dev/null |
    python3 -c '
import hashlib, os, sys
out = sys.argv[1]
streams = {}
for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    if len(f) < 5 or not f[4]:
        continue
    stream, src, port, payload = f[0], f[1] or f[2], f[3], bytes.fromhex(f[4].replace(":", ""))
    st = streams.setdefault(stream, {"first": (src, port), "data": bytearray([1])})
    side = 0 if (src, port) == st["first"] else 1
    for i in range(0, len(payload), 0xffff):
        part = payload[i:i + 0xffff]
        st["data"] += bytes([side]) + len(part).to_bytes(2, "big") + part
for st in streams.values():
    data = bytes(st["data"])
    with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as w:
        w.write(data)
' "$corpus/tls_stream"
    tshark -r "$f" -Y tls.handshake.certificate -T fields -e tls.handshake.certificate 2>/dev/null |
    python3 -c '
import hashlib, os, sys
out = sys.argv[1]
for line in sys.stdin:
    for h in line.strip().replace(":", "").split(","):
        if h:
            der = bytes.fromhex(h)
            with open(os.path.join(out, hashlib.sha1(der).hexdigest()), "wb") as w:
                w.write(der)
' "$corpus/certificate"
done
for t in tls_stream certificate pcap decode; do
    echo "seed.sh: $t: $(ls "$corpus/$t" | wc -l) inputs"
done
