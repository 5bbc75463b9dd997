#!/usr/bin/env bash
# Every experiment runs with --quick and writes well-formed output: a results.json whose claims carry a verdict from
# the allowed set and a reason, a results.md table, and charts that are well-formed SVG.
# usage: experiments_test.sh PATH/TO/rectifier   (exit 77: Fashion-MNIST not installed, skipped)
set -uo pipefail
R=${1:?usage: experiments_test.sh RECTIFIER}
[ -d /usr/share/datasets/fashion-mnist ] || { echo "fashion-mnist not installed: skipped"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$R" experiment list >"$T/list" || exit 1
[ "$(wc -l <"$T/list")" -ge 8 ] || { echo "experiment list: $(cat "$T/list")"; exit 1; }
"$R" experiment run nosuch --quick --out "$T" 2>"$T/err"; [ $? = 2 ] && grep -q "unknown name 'nosuch'" "$T/err" || { echo "unknown name not rejected"; exit 1; }
start=$(date +%s)
"$R" experiment run all --quick --out "$T/out" >"$T/log" 2>&1 || { cat "$T/log"; exit 1; }
echo "all quick experiments: $(( $(date +%s) - start )) s"
/usr/bin/python3 - "$T/out" "$T/list" <<'PY' || exit 1
import json, os, sys, xml.dom.minidom
out, names = sys.argv[1], [l.split()[0] for l in open(sys.argv[2])]
for n in names:
    d = os.path.join(out, n)
    j = json.load(open(os.path.join(d, "results.json")))
    assert j["name"] == n and j["quick"] is True and j["claims"], n
    for c in j["claims"]:
        assert c["verdict"] in ("reproduced", "not reproduced", "inconclusive"), (n, c)
        assert c["reason"] and c["measured"] and c["published"], (n, c)
        if c["chart"]:
            xml.dom.minidom.parse(os.path.join(d, c["chart"]))  # well-formed SVG
    assert "| claim |" in open(os.path.join(d, "results.md")).read()
    print(f"{n}: {len(j['claims'])} claims, {j['seconds']:.1f} s")
assert os.path.exists(os.path.join(out, "results.md"))
PY
