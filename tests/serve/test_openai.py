"""`recontrol serve` against the official `openai` Python client, on loopback only.

A tiny LLaMA with the SentencePiece test tokenizer (Vicuna chat template) and a value network
are assembled by tiny_chat_model.py. Every generated text is checked against `recontrol
generate` with the same settings (greedy, seeded sampling, RE-Control), alone and with eight
requests in flight at once (per-request seeds: the same text in a batch as alone); then stop
strings, usage counts, the error cases (400 with an OpenAI error object, 401, 404, 413, 429 with
Retry-After, 504 on timeout) and a client that disconnects mid-stream (its request is cancelled
and its queue place freed).

usage: python3 test_openai.py BUILD_DIR SOURCE_DIR
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

try:
    import openai
except ImportError:
    print("FAIL: the openai package is missing (python3 -m pip install openai; .ci/run installs it)")
    sys.exit(1)

BIN = os.path.join(sys.argv[1], "recontrol")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tiny_chat_model  # noqa: E402

KEY = "sk-test-key"
passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


class Server:
    def __init__(self, model, *args, env=None):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen([BIN, "serve", "--model", model, "--port", "0", *args],
                                  stdout=subprocess.PIPE, stderr=self.log, text=True,
                                  env=dict(os.environ, **(env or {})))
        line = self.p.stdout.readline()
        if "http://127.0.0.1:" not in line:
            self.log.seek(0)
            raise SystemExit("FAIL: server did not start: %r %s" % (line, self.log.read()))
        self.startup = line
        self.port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        self.url = "http://127.0.0.1:%d/v1" % self.port

    def client(self, key=KEY, timeout=60):
        return openai.OpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=timeout)

    def raw(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return -1


def reference(model, prompt, chat, max_new, temperature=0.0, top_p=1.0, seed=0, value=None,
              step_size=0.5, steps=30):
    cmd = [BIN, "generate", "--model", model, "--prompt", prompt, "--max-new-tokens", str(max_new),
           "--temperature", str(temperature), "--top-p", str(top_p), "--seed", str(seed), "--json"]
    if chat:
        cmd.append("--chat")
    if value:
        cmd += ["--value-model", value, "--step-size", str(step_size), "--steps", str(steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[0])


def chat_stream(client, **kw):
    text, finish, usage, roles = "", None, None, []
    for ch in client.chat.completions.create(stream=True, **kw):
        if ch.usage:
            usage = ch.usage
        for c in ch.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, finish, usage, roles


def completion_stream(client, **kw):
    text, finish = "", None
    for ch in client.completions.create(stream=True, **kw):
        for c in ch.choices:
            text += c.text or ""
            finish = c.finish_reason or finish
    return text, finish


def main():
    tmp = tempfile.mkdtemp()
    tiny_chat_model.make(tmp)
    model, value = os.path.join(tmp, "model"), os.path.join(tmp, "value.safetensors")
    msgs = lambda s: [{"role": "user", "content": s}]  # noqa: E731

    # ---- the main server ----------------------------------------------------------------
    s = Server(model, "--api-key", KEY, "--value-model", "v=" + value, "--parallel", "4",
               "--max-tokens", "64", "--max-prompt-tokens", "200", "--max-body", "8192",
               "--max-steps", "100000")
    check("startup line names model, device, value networks",
          all(x in s.startup for x in ("model", "device cpu", "v=", "32->16->1", "vicuna")), s.startup)
    cl = s.client()
    ms = cl.models.list()
    check("GET /v1/models", [m.id for m in ms.data] == ["model"], str(ms))

    # the four settings, each with its `recontrol generate` reference
    cases = {
        "chat greedy": (dict(chat=True, prompt="Hello there", max_new=24), {}),
        "chat sampled": (dict(chat=True, prompt="Tell me a story", max_new=20, temperature=0.8,
                              top_p=0.9, seed=11), dict(temperature=0.8, top_p=0.9, seed=11)),
        "completion sampled": (dict(chat=False, prompt="Once upon a time", max_new=20,
                                    temperature=0.7, top_p=0.95, seed=7),
                               dict(temperature=0.7, top_p=0.95, seed=7)),
        "chat RE-Control": (dict(chat=True, prompt="Hello there", max_new=24, value=value,
                                 step_size=50, steps=10),
                            dict(extra_body={"recontrol": {"value_model": "v", "step_size": 50,
                                                           "steps": 10}})),
    }
    refs = {k: reference(model, **r) for k, (r, _) in cases.items()}
    check("RE-Control changes the greedy text (reference)",
          refs["chat RE-Control"]["text"] != refs["chat greedy"]["text"])

    def run(name, stream):
        r, kw = cases[name]
        kw = dict(kw)
        if "temperature" not in kw:
            kw["temperature"] = 0
        if r["chat"]:
            if stream:
                t, f, u, _ = chat_stream(cl, model="model", messages=msgs(r["prompt"]),
                                         max_tokens=r["max_new"],
                                         stream_options={"include_usage": True}, **kw)
                return t, f, u
            o = cl.chat.completions.create(model="model", messages=msgs(r["prompt"]),
                                           max_tokens=r["max_new"], **kw)
            return o.choices[0].message.content, o.choices[0].finish_reason, o.usage
        if stream:
            t, f = completion_stream(cl, model="model", prompt=r["prompt"], max_tokens=r["max_new"], **kw)
            return t, f, None
        o = cl.completions.create(model="model", prompt=r["prompt"], max_tokens=r["max_new"], **kw)
        return o.choices[0].text, o.choices[0].finish_reason, o.usage

    for name in cases:
        ref = refs[name]
        for stream in (False, True):
            t, f, u = run(name, stream)
            tag = "%s %s" % (name, "stream" if stream else "json")
            check(tag + ": text equals recontrol generate", t == ref["text"],
                  "\n  got  %r\n  want %r" % (t, ref["text"]))
            check(tag + ": finish_reason", f == ("stop" if ref["finish"] == "eos" else "length"), f)
            if u is not None:
                check(tag + ": usage", (u.prompt_tokens, u.completion_tokens) ==
                      (len(ref["prompt_ids"]), len(ref["ids"])), str(u))

    # eight at once, mixed plain / sampled / controlled: each the same as alone
    jobs = [(name, stream) for name in cases for stream in (False, True)]
    with ThreadPoolExecutor(len(jobs)) as ex:
        got = list(ex.map(lambda j: run(*j)[0], jobs))
    check("8 concurrent requests: each equals its reference",
          all(g == refs[j[0]]["text"] for g, j in zip(got, jobs)),
          str([(j, g == refs[j[0]]["text"]) for g, j in zip(got, jobs)]))

    # prompt cache (on by default): the same prompt again reuses all but its last position's KV
    # from the slot that ran it, and the text stays the reference's
    check("startup line says the prompt cache is on", "prompt cache on" in s.startup, s.startup)
    ref = refs["chat greedy"]
    o = cl.chat.completions.create(model="model", messages=msgs("Hello there"), max_tokens=24, temperature=0)
    d = o.usage.prompt_tokens_details
    check("prompt cache: a repeated prompt reuses prompt_tokens - 1 positions",
          d is not None and d.cached_tokens == len(ref["prompt_ids"]) - 1, str(o.usage))
    check("prompt cache: the text is unchanged", o.choices[0].message.content == ref["text"],
          repr(o.choices[0].message.content))
    # a longer prompt that starts with an earlier prompt + reply (a second turn) reuses that prefix
    cl.completions.create(model="model", prompt="Once upon a time", max_tokens=20, temperature=0)
    o = cl.completions.create(model="model", prompt="Once upon a time there was", max_tokens=8, temperature=0)
    d = o.usage.prompt_tokens_details
    check("prompt cache: a prompt extending an earlier one reuses its common prefix",
          d is not None and 0 < d.cached_tokens < o.usage.prompt_tokens, str(o.usage))
    want = reference(model, chat=False, prompt="Once upon a time there was", max_new=8)["text"]
    check("prompt cache: the extended prompt's text equals recontrol generate's",
          o.choices[0].text == want, "\n  got  %r\n  want %r" % (o.choices[0].text, want))

    # stop strings: cut before the first occurrence, finish_reason "stop"
    full = refs["chat greedy"]["text"]
    stop = full[6:9]
    want = full[:full.find(stop)]
    o = cl.chat.completions.create(model="model", messages=msgs("Hello there"), max_tokens=24,
                                   temperature=0, stop=[stop, "never-appears"])
    check("stop string (json)", (o.choices[0].message.content, o.choices[0].finish_reason) ==
          (want, "stop"), repr(o.choices[0].message.content))
    t, f, _, roles = chat_stream(cl, model="model", messages=msgs("Hello there"), max_tokens=24,
                                 temperature=0, stop=stop)
    check("stop string (stream)", (t, f, roles) == (want, "stop", ["assistant"]), repr((t, f, roles)))

    # continuous batching: a short request joins while a long (slow, RE-Controlled) one runs,
    # and leaves before it
    slow = cl.completions.create(model="model", prompt="Hello", max_tokens=64, temperature=0,
                                 stream=True, extra_body={"recontrol": {"value_model": "v",
                                                                        "step_size": 0.01,
                                                                        "steps": 20000}})
    it = iter(slow)
    next(it)
    o = cl.chat.completions.create(model="model", messages=msgs("Hello there"), max_tokens=3,
                                   temperature=0)
    more = next(it, None)
    check("a request joins the running batch and finishes before the long one",
          o.choices[0].message.content == refs["chat greedy"]["text"][:len(o.choices[0].message.content)]
          and o.choices[0].finish_reason == "length" and more is not None
          and more.choices[0].finish_reason is None)
    slow.close()

    # ---- errors -------------------------------------------------------------------------
    def bad(name, status, param=None, code=None, **kw):
        kw.setdefault("messages", msgs("hi"))
        try:
            cl.chat.completions.create(model="model", **kw)
            check(name, False, "accepted")
        except openai.APIStatusError as e:
            err = (e.body or {}) if isinstance(e.body, dict) else {}
            ok = e.status_code == status and isinstance(err.get("message"), str)
            if param:
                ok = ok and err.get("param") == param
            if code:
                ok = ok and err.get("code") == code
            check(name, ok, "%s %s" % (e.status_code, e.body))

    bad("wrong type: temperature", 400, "temperature", extra_body={"temperature": "hot"})
    bad("out of range: top_p", 400, "top_p", top_p=1.5)
    bad("out of range: max_tokens", 400, "max_tokens", max_tokens=0)
    bad("above the server's max_tokens", 400, "max_tokens", max_tokens=65)
    bad("n = 2", 400, "n", n=2)
    bad("messages of the wrong type", 400, "messages", messages="hi")
    bad("unknown role", 400, "messages[0]", messages=[{"role": "wizard", "content": "x"}])
    bad("unknown value model", 400, "recontrol.value_model",
        extra_body={"recontrol": {"value_model": "nope"}})
    bad("steps out of range", 400, "recontrol.steps",
        extra_body={"recontrol": {"value_model": "v", "steps": 10 ** 6}})
    bad("step_size of the wrong type", 400, "recontrol.step_size",
        extra_body={"recontrol": {"value_model": "v", "step_size": "big"}})
    bad("prompt too long", 400, code="context_length_exceeded", messages=msgs("word " * 300))
    try:
        s.client(key="wrong").chat.completions.create(model="model", messages=msgs("hi"))
        check("wrong API key", False, "accepted")
    except openai.AuthenticationError as e:
        check("wrong API key: 401", e.status_code == 401)
    st, _, data = s.raw("POST", "/v1/chat/completions", body=b'{"messages": [')
    err = json.loads(data).get("error", {})
    check("bad JSON: 400 with an error object", st == 400 and err.get("type") == "invalid_request_error",
          data)
    st, _, data = s.raw("POST", "/v1/completions", body=b"[1, 2]")
    check("body not an object: 400", st == 400, data)
    st, _, data = s.raw("POST", "/v1/completions", body=json.dumps({"prompt": "x" * 9000}))
    check("body over --max-body: 413", st == 413 and b"error" in data, st)
    st, _, data = s.raw("GET", "/v1/nothing")
    check("unknown route: 404", st == 404, st)
    st, _, data = s.raw("GET", "/v1/chat/completions")
    check("wrong method: 405", st == 405, st)
    st, _, data = s.raw("GET", "/health", headers={"Authorization": ""})
    check("health without a key", st == 200 and json.loads(data)["status"] == "ok", data)
    st, _, data = s.raw("POST", "/v1/completions", body=json.dumps({"prompt": [1, 5, 99999]}))
    check("token id outside the vocabulary: 400", st == 400, data)
    o = cl.completions.create(model="model", prompt="Hello", max_tokens=3, temperature=0)
    check("still serving after the errors", len(o.choices[0].text) > 0)
    code = s.stop()
    check("SIGTERM: clean exit", code == 0, code)

    # a value network of the wrong width is refused at start, naming both widths
    r = subprocess.run([BIN, "serve", "--model", model, "--port", "0", "--value-model",
                        "w=" + os.path.join(sys.argv[2], "tests", "fixtures", "value", "mlp2.safetensors")],
                       capture_output=True, text=True, timeout=60)
    check("value network of the wrong width refused", r.returncode != 0 and "20-dim" in r.stderr
          and "32" in r.stderr, r.stderr)

    # the API key from the environment
    s = Server(model, "--no-prompt-cache", env={"RECONTROL_API_KEY": "from-env"})
    st1, _, _ = s.raw("GET", "/v1/models")
    st2, _, _ = s.raw("GET", "/v1/models", headers={"Authorization": "Bearer from-env"})
    check("RECONTROL_API_KEY: 401 without it, 200 with it", (st1, st2) == (401, 200), (st1, st2))
    # --no-prompt-cache: a repeated prompt is prefilled in full
    cl = s.client(key="from-env")
    for _ in range(2):
        o = cl.completions.create(model="model", prompt="Once upon a time", max_tokens=4, temperature=0)
    check("--no-prompt-cache: nothing reused", "prompt cache off" in s.startup and
          o.usage.prompt_tokens_details.cached_tokens == 0, str(o.usage))
    s.stop()

    # ---- a slow server: queue limit, disconnect, timeout -----------------------------------
    # RE-Control with very many ascent steps makes every token slow; one slot, a queue of one.
    s = Server(model, "--value-model", "v=" + value, "--parallel", "1", "--max-queue", "1",
               "--max-steps", "100000", "--timeout", "3")
    cl = s.client(key="none")
    slow = dict(model="model", prompt="Hello", max_tokens=200, temperature=0,
                extra_body={"recontrol": {"value_model": "v", "step_size": 0.01, "steps": 20000}})
    stream = cl.completions.create(stream=True, **slow)
    it = iter(stream)
    next(it)
    st, hdr, data = s.raw("POST", "/v1/completions", body=json.dumps({"prompt": "x", "max_tokens": 2}))
    check("queue full: 429 with Retry-After", st == 429 and "Retry-After" in hdr, (st, hdr))
    try:
        cl.completions.create(model="model", prompt="x", max_tokens=2)
        check("queue full: openai.RateLimitError", False, "accepted")
    except openai.RateLimitError:
        check("queue full: openai.RateLimitError", True)
    stream.close()  # the client goes away mid-stream
    ok, t0 = False, time.time()
    while time.time() - t0 < 10 and not ok:
        st, _, data = s.raw("POST", "/v1/completions", body=json.dumps({"prompt": "x", "max_tokens": 2}))
        ok = st == 200
        time.sleep(0.1)
    check("disconnect mid-stream cancels the request (the queue frees)", ok, (st, data))
    check("disconnect is logged", "client gone" in s.log_text(), s.log_text())
    t0 = time.time()
    try:
        cl.completions.create(**slow)
        check("timeout: 504", False, "completed")
    except openai.APIStatusError as e:
        check("timeout: 504", e.status_code == 504 and time.time() - t0 < 10, e.status_code)
    st, _, _ = s.raw("GET", "/health")
    check("alive after all that", st == 200)
    code = s.stop()
    check("SIGTERM: clean exit (slow server)", code == 0, code)

    # ---- the default model, when it has been downloaded ----------------------------------
    default = os.environ.get("RECONTROL_MODEL") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "recontrol",
        "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(default):
        s = Server(default, "--parallel", "2", "--ctx", "256")
        o = s.client(key="none").chat.completions.create(
            model="x", messages=msgs("What is the capital of France?"), max_tokens=24, temperature=0)
        check("default model (ChatML template): Paris", "Paris" in o.choices[0].message.content and
              "im_end" not in o.choices[0].message.content, o.choices[0].message.content)
        s.stop()
    else:
        print("skipped: default model not downloaded (run recontrol setup)")

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    TMP = tempfile.mkdtemp(prefix="recontrol-serve-test-")
    tempfile.tempdir = TMP  # everything below (model files, server logs) lands in TMP
    try:
        rc = main()
    finally:
        import shutil
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
