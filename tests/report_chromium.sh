#!/usr/bin/env bash
# The HTML report of a real run opens in headless Chromium with no console errors, shows every chart, and its
# screenshot is not blank. usage: report_chromium.sh PATH/TO/rectifier     (exit 77 = Chromium not installed: skip)
set -uo pipefail
R=${1:?usage: report_chromium.sh RECTIFIER}
command -v chromium >/dev/null || { echo "chromium not installed: skipped"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$R" train --data moons --arch "dense(32) relu dense(32) tanh dense(2)" --epochs 6 --metrics "$T/m.jsonl" --report "$T/report.html" -q >/dev/null || exit 1
xmllint --html --noout "$T/report.html" 2>"$T/lint" ; grep -v "Tag svg invalid\|Tag path invalid\|Tag rect invalid\|Tag line invalid\|Tag text invalid\|Tag g invalid\|Tag clipPath invalid\|Tag circle invalid\|^\s*$\|^\s*\^\|<" "$T/lint" | head -5
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$T/profile" --enable-logging=stderr --v=0)
timeout 120 chromium "${flags[@]}" --window-size=1400,4000 --screenshot="$T/shot.png" "file://$T/report.html" >"$T/out" 2>"$T/log"
timeout 120 chromium "${flags[@]}" --dump-dom "file://$T/report.html" >"$T/dom.html" 2>>"$T/log"
fail=0
if grep -E "CONSOLE|Uncaught|ERR_" "$T/log" | grep -v -i "dbus\|gpu\|sandbox" | head -3 | grep -q .; then echo "console errors:"; grep -E "CONSOLE|Uncaught|ERR_" "$T/log" | head; fail=1; fi
for chart in "Loss" "Accuracy" "Gradient norm per tensor" "Dead units per layer" "Sparsity (exact zeros) per layer" \
             "Pre-activation histogram, layer 1" "Pre-activation histogram, layer 3" "Per-layer summary" "Warnings"; do
  grep -q "$chart" "$T/dom.html" || { echo "rendered page lacks: $chart"; fail=1; }
done
svgs=$(grep -o "<svg" "$T/dom.html" | wc -l)
[ "$svgs" -ge 7 ] || { echo "only $svgs charts rendered"; fail=1; }
grep -q "http" <(grep -o 'src="[^"]*"\|href="[^"]*"' "$T/report.html") && { echo "the report references an external resource"; fail=1; }
[ -s "$T/shot.png" ] || { echo "no screenshot"; exit 1; }
# Not blank: many distinct colours in the decoded screenshot.
/usr/bin/python3 - "$T/shot.png" <<'PY' || fail=1
import struct, sys, zlib
b = open(sys.argv[1], "rb").read(); assert b[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, w = 8, b"", 0
while pos < len(b):
    n, kind = struct.unpack(">I4s", b[pos:pos + 8]); data = b[pos + 8:pos + 8 + n]; pos += 12 + n
    if kind == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", data[:10])
    if kind == b"IDAT": idat += data
raw = zlib.decompress(idat); bpp = {2: 3, 6: 4}[ctype]; stride = w * bpp
prev = bytearray(stride); colours = set(); i = 0
for y in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0; up = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + up) & 255
        elif f == 3: line[x] = (line[x] + (a + up) // 2) & 255
        elif f == 4:
            p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
    prev = line
    if y % 7 == 0: colours.update(bytes(line[k:k + 3]) for k in range(0, stride, bpp * 3))
print(f"screenshot {w}x{h}, {len(colours)} distinct colours")
sys.exit(0 if len(colours) > 20 else 1)
PY
[ $fail = 0 ] && echo "report: chromium renders $svgs charts, no console errors" && exit 0
exit 1
