#!/usr/bin/env bash
# `recontrol judge` against a real OpenAI-compatible server on loopback: `recontrol serve` with the
# tiny chat model of tests/serve/tiny_chat_model.py. Checks: every pair judged and its raw reply
# recorded; each recorded reply equals the server's own answer to the same system + user messages
# at temperature 0 (asked directly over HTTP); a wrong key is a clear 401 error; with the server
# gone a rerun is answered from the record, and a new pair fails after its retries.
# Args: <build_dir> <source_dir>.
set -euo pipefail
B="$1"
S="$2"
T=$(mktemp -d)
SP=""
cleanup() { [ -n "$SP" ] && kill "$SP" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
"$B/recontrol" judge --help | grep -q -- "--against-reference" || { echo "FAIL: judge --help"; exit 1; }
python3 "$S/tests/serve/tiny_chat_model.py" "$T" > /dev/null
# the judge prompt (system + user) is ~740 tokens: give the RoPE model room for it
python3 - "$T/model/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["max_position_embeddings"] = 2048
json.dump(c, open(sys.argv[1], "w"))
PY
"$B/recontrol" serve --model "$T/model" --port 0 --api-key sk-judge --quiet --ctx 1024 --parallel 2 > "$T/serve.out" 2> "$T/serve.err" &
SP=$!
for _ in $(seq 300); do grep -q "http://127.0.0.1:" "$T/serve.out" && break; sleep 0.1; done
BASE=$(grep -o "http://127.0.0.1:[0-9]*" "$T/serve.out" | head -1)
[ -n "$BASE" ] || { echo "FAIL: serve did not start"; cat "$T/serve.err"; exit 1; }
JP="$S/tests/fixtures/judge_protocol"
judge() {
    "$B/recontrol" judge --run "$JP/red" --against "$JP/blue" --url "$BASE/v1" --model tiny \
        --api-key-env JUDGE_KEY --seed 14 --sample 6 --max-tokens 8 --retries 1 "$@"
}
JUDGE_KEY=sk-judge judge --out "$T/j" > "$T/j.md" 2> "$T/j.err" || { echo "FAIL: judge"; cat "$T/j.err"; exit 1; }
[ "$(wc -l < "$T/j.jsonl")" = 6 ] || { echo "FAIL: 6 replies expected in j.jsonl"; exit 1; }
python3 - "$T" "$BASE" "$JP/system_prompt.txt" <<'PY'
import http.client, json, sys, urllib.parse
t, base, sysf = sys.argv[1:]
s = json.load(open(t + "/j.json"))
assert s["n"] == 6 and s["reused_replies"] == 0, s
assert s["win"] + s["tie"] + s["lose"] <= 6
system = open(sysf).read()
u = urllib.parse.urlparse(base)
for line in open(t + "/j.jsonl"):
    rec = json.loads(line)
    body = json.dumps({"model": "tiny", "temperature": 0, "max_tokens": 8,
                       "messages": [{"role": "system", "content": system},
                                    {"role": "user", "content": rec["user"]}]})
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    c.request("POST", "/v1/chat/completions", body=body,
              headers={"Authorization": "Bearer sk-judge", "Content-Type": "application/json"})
    r = c.getresponse()
    got = json.loads(r.read())["choices"][0]["message"]["content"]
    assert r.status == 200 and got == rec["reply"], (got, rec["reply"])
print("ok   6 recorded replies equal the server's direct answers")
PY
if JUDGE_KEY=wrong judge --out "$T/bad" > /dev/null 2> "$T/bad.err"; then echo "FAIL: a wrong key passed"; exit 1; fi
grep -q "HTTP 401" "$T/bad.err" || { echo "FAIL: no HTTP 401 message"; cat "$T/bad.err"; exit 1; }
kill "$SP"
wait "$SP" 2>/dev/null || true
SP=""
JUDGE_KEY=sk-judge judge --out "$T/j" > /dev/null 2> "$T/j2.err" || { echo "FAIL: rerun from the record"; cat "$T/j2.err"; exit 1; }
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert s['reused_replies']==6, s" "$T/j.json"
if JUDGE_KEY=sk-judge judge --out "$T/new" > /dev/null 2> "$T/new.err"; then echo "FAIL: no server but success"; exit 1; fi
grep -q "after 1 retries" "$T/new.err" || { echo "FAIL: retry message"; cat "$T/new.err"; exit 1; }
echo "judge_serve: 4 passed, 0 failed"
