#!/usr/bin/env bash
# `recontrol judge` against a real OpenAI-compatible server on loopback: `recontrol serve` with the
# tiny chat model of tests/serve/tiny_chat_model.py. Checks: every pair judged and its raw reply
# recorded; each recorded reply equals the server's own answer to the same system + user messages
# at temperature 0 (asked directly over HTTP); a wrong key is a clear 401 error; with the server
# gone a rerun is answered from the record, and a new pair fails after its retries.
# The local judge (--judge-model, the same model run in this process by the engine's generation
# loop): the same 6 replies as the server gave, the tally recomputed from them with the reference's
# rule (gpt4_eval.py: first line split on " " into two floats, else 0 0; sides swapped back;
# win/tie/lose by comparison), here 6 unparsable replies = 6 ties; a cut record resumes.
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
# the local judge: same prompts, seed and sample, no endpoint
local_judge() {
    "$B/recontrol" judge --run "$JP/red" --against "$JP/blue" --judge-model "$T/model" --seed 14 \
        --sample 6 --max-tokens 8 --batch 4 "$@"
}
local_judge --out "$T/loc" > "$T/loc.md" 2> "$T/loc.err" || { echo "FAIL: local judge"; cat "$T/loc.err"; exit 1; }
cat >"$T/tally.py" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open(t + "/loc.json"))
http = {json.loads(l)["item"]: json.loads(l) for l in open(t + "/j.jsonl")}
rows = [json.loads(l) for l in open(t + "/loc.jsonl")]
assert len(rows) == 6 and s["n"] == 6, (len(rows), s["n"])
win = tie = lose = unparsed = 0
for r in rows:
    h = http[r["item"]]
    assert r["user"] == h["user"] and r["side"] == h["side"], r["item"]
    assert r["reply"] == h["reply"], ("local and served replies differ", r["reply"], h["reply"])
    content = r["reply"]
    try:  # the reference's rule (gpt4_eval.py)
        score1, score2 = map(float, content.split("\n")[0].split(" "))
    except Exception:
        score1, score2 = 0, 0
        unparsed += 1
    if r["side"] == 1:
        score1, score2 = score2, score1
    win += score1 > score2; tie += score1 == score2; lose += score1 < score2
got = (s["win"], s["tie"], s["lose"], s["unparsed"])
assert got == (win, tie, lose, unparsed), (got, (win, tie, lose, unparsed))
assert got == (0, 6, 0, 6), got  # a tiny random model writes no two scores: 6 ties
print("ok   local judge: 6 replies equal the server's; win/tie/lose/unparsed", got, "reused",
      s["reused_replies"])
PY
python3 "$T/tally.py" "$T" || { echo "FAIL: local judge tally"; exit 1; }
grep -q "local model" "$T/loc.md" || { echo "FAIL: the summary does not name the local judge"; exit 1; }
# resume: a record cut after 2 pairs gets the other 4 answered, the first 2 reused
head -n 2 "$T/loc.jsonl" > "$T/cut" && mv "$T/cut" "$T/loc.jsonl"
local_judge --out "$T/loc" > /dev/null 2> "$T/loc2.err" || { echo "FAIL: local judge resume"; cat "$T/loc2.err"; exit 1; }
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert s['reused_replies']==2, s['reused_replies']" "$T/loc.json" ||
    { echo "FAIL: resume did not reuse the 2 recorded pairs"; exit 1; }
python3 "$T/tally.py" "$T" || { echo "FAIL: local judge tally after resume"; exit 1; }
if "$B/recontrol" judge --run "$JP/red" --against "$JP/blue" --judge-model "$T/model" --device cuda \
    --out "$T/gpu" > /dev/null 2> "$T/gpu.err"; then
    nvidia-smi -L > /dev/null 2>&1 || { echo "FAIL: --device cuda passed without a GPU"; exit 1; }
else
    [ $? = 1 ] && grep -Eq "built without CUDA|no CUDA device|CUDA backend module" "$T/gpu.err" ||
        { echo "FAIL: local judge --device cuda without a GPU: no clear message / exit 1"; cat "$T/gpu.err"; exit 1; }
fi
if JUDGE_KEY=wrong judge --out "$T/bad" > /dev/null 2> "$T/bad.err"; then echo "FAIL: a wrong key passed"; exit 1; fi
grep -q "HTTP 401" "$T/bad.err" || { echo "FAIL: no HTTP 401 message"; cat "$T/bad.err"; exit 1; }
kill "$SP"
wait "$SP" 2>/dev/null || true
SP=""
JUDGE_KEY=sk-judge judge --out "$T/j" > /dev/null 2> "$T/j2.err" || { echo "FAIL: rerun from the record"; cat "$T/j2.err"; exit 1; }
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert s['reused_replies']==6, s" "$T/j.json"
if JUDGE_KEY=sk-judge judge --out "$T/new" > /dev/null 2> "$T/new.err"; then echo "FAIL: no server but success"; exit 1; fi
grep -q "after 1 retries" "$T/new.err" || { echo "FAIL: retry message"; cat "$T/new.err"; exit 1; }
echo "judge_serve: 7 passed, 0 failed"
