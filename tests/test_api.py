"""The headless API against the real server: the `openai` client (plain and streaming), raw REST calls (an upload
that becomes answerable, then deleted), the `mcp` client calling `ask`, tokens made by `rag token`, and every
refusal: no token, a revoked token, a KB the token may not read (the same 404 as a KB that does not exist, naming
nothing), a KB it may read but not add to (403), too large (413), malformed (422). Nothing of a KB the caller may
not read comes back from any route: answers, passages, errors, counts, model lists.

The team is test_kb_http's: `default` (the shipped corpus), `hr`, and `skunkworks` (words found nowhere else).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys

import httpx
import pytest

from conftest import ROOT
from helpers import LLM_KEY, SLOW, rag, serve_chat, serve_llm
from rag import Library, Settings
from rag.tokens import create
from rag.users import add_user, remove_user

HR = "Parental leave at Velmora Corp is 26 weeks at full pay. Requests go to the HR office on the third floor.\n"
SECRET = "The prototype drone Kestrel-9 flies for 41 minutes on one charge. Its test range is at Dunmore Field.\n"
SECRET_WORDS = ("skunkworks", "Kestrel", "Dunmore", "41 minutes")
DRONE = "How long does the prototype drone fly on one charge?"
FIRST = "Who was the first world leader to reach out to George W. Bush after 9/11?"


@pytest.fixture(scope="module")
def team(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("api")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    users = root / "users.txt"
    add_user(users, "rita", "rita-Secret-41", kbs={"hr": "ask"})
    add_user(users, "uma", "uma-Secret-42", kbs={"hr": "ask", "skunkworks": "upload"})
    add_user(users, "boss", "boss-Secret-43", can_upload=True)
    settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus", quiet=True,
                                 auth_file=users)
    library = Library.open(settings)
    for name, text in (("hr", HR), ("skunkworks", SECRET)):
        (library.create(name).corpus_dir / f"{name}-notes.txt").write_text(text)
    store = library.store
    tokens = {"boss": create(store, "boss", user="boss", kbs=[]), "rita": create(store, "rita", user="rita", kbs=[]),
              "uma": create(store, "uma", user="uma", kbs=[]), "uma-hr": create(store, "uma-hr", user="uma", kbs=["hr"])}
    with serve_chat(settings, max_upload_mb=1) as server:
        yield server, tokens, root


def http(server, token=None) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=SLOW / 1000,
                        headers={"authorization": f"Bearer {token}"} if token else {})


def leaks(text: str) -> list[str]:
    return [w for w in SECRET_WORDS if w.lower() in text.lower()]


def stored(server, kb: str, c: dict) -> str:
    return server.server.library.index(kb, build=False).store.document_text(c["source"], c["doc_id"], c["page"])


def openai_client(server, token):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key=token, max_retries=0, timeout=SLOW / 1000)


# ---- OpenAI-compatible ------------------------------------------------------------------------


def test_the_openai_client_gets_a_cited_answer_and_follow_ups_resolve(team):
    server, tokens, _ = team
    client = openai_client(server, tokens["boss"])
    assert [m.id for m in client.models.list()] == ["rag", "rag:default", "rag:hr", "rag:skunkworks"]
    messages = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": FIRST}]
    for follow_up in ("and how did that friendship end?", "when did he first take office?", None):
        completion = client.chat.completions.create(model="rag:default", messages=messages)
        extra = completion.model_extra["rag"]
        content = completion.choices[0].message.content
        assert completion.choices[0].message.role == "assistant" and not extra["abstained"]
        assert content.startswith(extra["answer"]) and "\n\nSources:\n- [1] putin-diplomacy.txt: “" in content
        for c in extra["citations"]:
            assert c["text"] == stored(server, "default", c)[c["start"]:c["end"]] and f"[{c['n']}]" in extra["answer"]
        assert 0 < extra["confidence"] <= 1 and extra["passages"]
        if follow_up:
            messages += [{"role": "assistant", "content": content}, {"role": "user", "content": follow_up}]
    # the third question resolved against the second, itself resolved against the first, as the chat does
    assert "Putin" in extra["resolved_question"]
    assert any(c["text"].startswith("Ever since he first took office in 2000") for c in extra["citations"])


def test_streaming_sends_the_same_answer_in_openai_chunks(team):
    server, tokens, _ = team
    client = openai_client(server, tokens["boss"])
    plain = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": FIRST}])
    chunks = list(client.chat.completions.create(model="rag", messages=[{"role": "user", "content": FIRST}],
                                                 stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop" and all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].model_extra["rag"]["citations"] == plain.model_extra["rag"]["citations"]


def test_an_abstention_is_an_ordinary_message_with_the_closest_passages(team):
    server, tokens, _ = team
    completion = openai_client(server, tokens["boss"]).chat.completions.create(
        model="rag:hr", messages=[{"role": "user", "content": "What colour is the CEO's car?"}])
    extra = completion.model_extra["rag"]
    assert extra["abstained"] and completion.choices[0].message.content == extra["answer"]
    assert extra["citations"] == [] and [p["kb"] for p in extra["passages"]] == ["hr"]


def test_a_model_names_several_kbs_searched_as_one(team):
    server, tokens, _ = team
    completion = openai_client(server, tokens["uma"]).chat.completions.create(
        model="rag:hr+skunkworks", messages=[{"role": "user", "content": DRONE}])
    extra = completion.model_extra["rag"]
    assert extra["citations"][0]["kb"] == "skunkworks" and "41 minutes" in extra["citations"][0]["text"]
    assert "(skunkworks)" in completion.choices[0].message.content  # several KBs: each source names its KB


@pytest.fixture(scope="module")
def with_llm(tmp_path_factory, embedder):
    """The server over the shipped corpus with a real LLM (llama.cpp, SmolLM2) and verified streaming."""
    root = tmp_path_factory.mktemp("api-llm")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    with serve_llm(root) as llm:
        settings = Settings.from_env(environ={}, index_dir=root / "index", corpus_dir=root / "corpus", quiet=True,
                                     llm_url=llm.url, llm_model="smollm2", llm_api_key=LLM_KEY, llm_timeout=900.0,
                                     verified_stream=True)
        with serve_chat(settings) as server:
            yield server


def test_with_an_llm_the_answer_is_generated_verified_and_streams_as_verified(with_llm):
    client = openai_client(with_llm, "no logins: any key")
    messages = [{"role": "user", "content": "How many U.S. presidents has Putin outlasted?"}]
    plain = client.chat.completions.create(model="rag", messages=messages)
    extra = plain.model_extra["rag"]
    assert extra["mode"] == "generative", extra["note"]  # as ask() decides: the model wrote it, the verifier kept it
    for c in extra["citations"]:
        assert c["text"] == stored(with_llm, "default", c)[c["start"]:c["end"]]
    chunks = list(client.chat.completions.create(model="rag", messages=messages, stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert "".join(pieces) == plain.choices[0].message.content  # greedy decoding: the same answer both times
    last = chunks[-1].model_extra["rag"]
    assert last["mode"] == "generative" and last["citations"] == extra["citations"]
    # the verified sentences came first, as the verifier passed them, then the sources list
    assert extra["citations"] and len(pieces) >= 2 and pieces[-1].startswith("\n\nSources:\n- [1] ")


# ---- REST -------------------------------------------------------------------------------------


def test_rest_ask_search_and_kbs(team):
    server, tokens, _ = team
    boss = http(server, tokens["boss"])
    answer = boss.post("/v1/ask", json={"question": DRONE, "kbs": ["skunkworks"]}).json()
    assert not answer["abstained"] and answer["citations"][0]["kb"] == "skunkworks"
    c = answer["citations"][0]
    assert c["text"] == stored(server, "skunkworks", c)[c["start"]:c["end"]]
    hits = boss.post("/v1/search", json={"query": "parental leave", "kbs": ["hr", "default"], "k": 3}).json()["hits"]
    assert hits[0]["kb"] == "hr" and "26 weeks" in hits[0]["text"] and len(hits) <= 3
    kbs = {k["name"]: k for k in boss.get("/v1/kbs").json()["kbs"]}
    assert list(kbs) == ["default", "hr", "skunkworks"] and kbs["hr"]["chunks"] == 1 and kbs["hr"]["can_add"]
    proxied = boss.get("/v1/kbs", headers={"host": "rag.example.org"})  # with logins, any name (a reverse proxy)
    assert proxied.status_code == 200 and len(proxied.json()["kbs"]) == 3
    rita = {k["name"]: k for k in http(server, tokens["rita"]).get("/v1/kbs").json()["kbs"]}
    assert list(rita) == ["hr"] and not rita["hr"]["can_add"] and rita["hr"]["default"]


def test_an_upload_becomes_answerable_and_a_delete_takes_it_away(team, tmp_path):
    server, tokens, _ = team
    uma = http(server, tokens["uma"])
    question = {"question": "Who is the range officer of the Kestrel-9?", "kbs": ["skunkworks"]}
    assert uma.post("/v1/ask", json=question).json()["abstained"]
    files = [("files", ("kestrel-range.txt", b"The Kestrel-9 range officer is Maren Ode.\n", "text/plain")),
             ("files", ("notes.exe", b"MZ\x90\x00", "application/octet-stream"))]
    report = uma.post("/v1/kbs/skunkworks/documents", files=files)
    assert report.status_code == 200, report.text
    report = report.json()
    assert report["added"] == ["kestrel-range.txt"] and report["failed"] == []
    assert report["rejected"] == [{"file": "notes.exe", "reason": report["rejected"][0]["reason"]}]
    assert "not accepted" in report["rejected"][0]["reason"]
    corpus = server.server.library.get("skunkworks").corpus_dir
    assert (corpus / "kestrel-range.txt").exists() and not (corpus / "notes.exe").exists()
    answer = uma.post("/v1/ask", json=question).json()
    assert "Maren Ode" in answer["citations"][0]["text"] and answer["citations"][0]["source"] == "kestrel-range.txt"
    listed = uma.get("/v1/kbs/skunkworks/documents").json()["documents"]
    assert [d["id"] for d in listed] == ["kestrel-range.txt", "skunkworks-notes.txt"] and listed[0]["chunks"] == 1
    gone = uma.delete("/v1/kbs/skunkworks/documents/kestrel-range.txt")
    assert gone.status_code == 200 and gone.json()["removed"] == ["kestrel-range.txt"]
    assert not (corpus / "kestrel-range.txt").exists()
    assert [d["id"] for d in uma.get("/v1/kbs/skunkworks/documents").json()["documents"]] == ["skunkworks-notes.txt"]
    after = uma.post("/v1/ask", json=question).json()
    assert all(c["source"] != "kestrel-range.txt" for c in after["citations"] + after["passages"])
    again = uma.delete("/v1/kbs/skunkworks/documents/kestrel-range.txt")
    assert again.status_code == 404 and again.json()["error"]["code"] == "document_not_found"


def test_bad_uploads_and_requests_get_the_right_status_and_lose_nothing(team):
    server, tokens, _ = team
    boss = http(server, tokens["boss"])
    corpus = server.server.library.get("hr").corpus_dir
    before = sorted(p.name for p in corpus.iterdir())
    big = boss.post("/v1/kbs/hr/documents", files=[("files", ("big.txt", b"word " * 300_000, "text/plain"))])
    assert big.status_code == 413 and "big.txt: too large" in big.json()["error"]["message"]
    huge = boss.post("/v1/kbs/hr/documents", files=[("files", ("huge.txt", b"w" * 22 * 1024 * 1024, "text/plain"))])
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "request_too_large"
    exe = boss.post("/v1/kbs/hr/documents", files=[("files", ("tool.exe", b"MZ", "application/octet-stream"))])
    assert exe.status_code == 422 and "tool.exe: file type .exe is not accepted" in exe.json()["error"]["message"]
    assert sorted(p.name for p in corpus.iterdir()) == before
    for bad in ({"kbs": ["hr"]}, {"question": "x", "k": 0}, {"question": "x", "mode": "psychic"}):
        r = boss.post("/v1/ask", json=bad)
        assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request_error", r.text
    assert boss.post("/v1/ask", json={"question": "  "}).status_code == 422
    r = boss.post("/v1/chat/completions", json={"model": "rag", "messages": [{"role": "assistant", "content": "hi"}]})
    assert r.status_code == 422 and "last message must be the user's question" in r.json()["error"]["message"]
    assert boss.get("/v1/nothing-here").status_code == 404


# ---- refusals ---------------------------------------------------------------------------------

ROUTES = [("GET", "/v1/models", None), ("GET", "/v1/kbs", None), ("POST", "/v1/ask", {"question": DRONE}),
          ("POST", "/v1/search", {"query": "drone"}), ("GET", "/v1/kbs/hr/documents", None),
          ("POST", "/v1/chat/completions", {"model": "rag", "messages": [{"role": "user", "content": DRONE}]}),
          ("DELETE", "/v1/kbs/hr/documents/hr-notes.txt", None),
          ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})]


@pytest.mark.parametrize("method, path, body", ROUTES)
def test_every_route_refuses_a_caller_without_a_valid_token(team, method, path, body):
    server, _, _ = team
    for token in (None, "rag_not-a-token", "not even the form"):
        r = http(server, token).request(method, path, json=body)
        assert r.status_code == 401, (token, r.text)
        assert r.json()["error"]["type"] == "authentication_error" and "Bearer" in r.headers["www-authenticate"]


def listed_text(env) -> str:
    listed = rag("token", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_a_revoked_token_is_refused_at_its_next_request(team):
    server, _, root = team
    env = {"RAG_INDEX_DIR": str(root / "index"), "RAG_AUTH_FILE": str(root / "users.txt")}
    made = rag("token", "create", "script", "--user", "rita", env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert re.fullmatch(r"rag_[\w-]{43}", token), made.stdout
    # only its hash is stored: read in another process (closing a descriptor of the database in this one, the
    # server's, would drop the server's SQLite locks on it)
    script = "import glob, sys; print(any(sys.argv[2].encode() in open(f, 'rb').read() for f in glob.glob(sys.argv[1])))"
    found = subprocess.run([sys.executable, "-c", script, str(root / "index" / "library.sqlite*"), token],
                           capture_output=True, text=True)
    assert found.stdout.strip() == "False" and token not in listed_text(env)
    client = http(server, token)
    assert client.get("/v1/kbs").json()["kbs"][0]["name"] == "hr"
    row = {r["name"]: r for r in json.loads(listed_text(env))}["script"]
    assert (row["user"], row["kbs"]) == ("rita", []) and "token_hash" not in row
    assert rag("token", "revoke", "script", env=env).returncode == 0
    assert client.get("/v1/kbs").status_code == 401
    assert rag("token", "create", "x", env=env).returncode == 2  # with logins, a token needs its --user
    # a token of a user who is then removed
    add_user(root / "users.txt", "temp", "temp-Secret-44", kbs={"hr": "ask"})
    orphan = http(server, rag("token", "create", "temp-script", "--user", "temp", env=env).stdout.strip())
    assert orphan.get("/v1/kbs").status_code == 200
    remove_user(root / "users.txt", "temp")
    assert orphan.get("/v1/kbs").status_code == 401


def test_a_kb_the_caller_may_not_read_is_indistinguishable_from_none(team):
    server, tokens, _ = team
    for who, kb in (("rita", "skunkworks"), ("uma-hr", "skunkworks"), ("rita", "default")):
        client = http(server, tokens[who])
        pairs = [(client.post("/v1/ask", json={"question": DRONE, "kbs": [kb]}),
                  client.post("/v1/ask", json={"question": DRONE, "kbs": ["no-such-kb"]})),
                 (client.post("/v1/search", json={"query": "drone", "kbs": [kb]}),
                  client.post("/v1/search", json={"query": "drone", "kbs": ["no-such-kb"]})),
                 (client.get(f"/v1/kbs/{kb}/documents"), client.get("/v1/kbs/no-such-kb/documents")),
                 (client.post(f"/v1/kbs/{kb}/documents", files=[("files", ("a.txt", b"a", "text/plain"))]),
                  client.post("/v1/kbs/no-such-kb/documents", files=[("files", ("a.txt", b"a", "text/plain"))])),
                 (client.delete(f"/v1/kbs/{kb}/documents/{kb}-notes.txt"),
                  client.delete("/v1/kbs/no-such-kb/documents/skunkworks-notes.txt")),
                 (client.post("/v1/chat/completions", json={"model": f"rag:{kb}", "messages": [
                     {"role": "user", "content": DRONE}]}),
                  client.post("/v1/chat/completions", json={"model": "rag:no-such-kb", "messages": [
                      {"role": "user", "content": DRONE}]}))]
        for refused, missing in pairs:
            assert refused.status_code == missing.status_code == 404, (who, kb, refused.text)
            assert refused.json() == missing.json() and kb not in refused.text
    rita = http(server, tokens["rita"])  # may read hr, not add to it
    added = rita.post("/v1/kbs/hr/documents", files=[("files", ("a.txt", b"a", "text/plain"))])
    removed = rita.delete("/v1/kbs/hr/documents/hr-notes.txt")
    assert added.status_code == removed.status_code == 403 and added.json()["error"]["type"] == "permission_error"
    assert "hr-notes.txt" in [d["id"] for d in rita.get("/v1/kbs/hr/documents").json()["documents"]]


def test_nothing_of_an_unreadable_kb_comes_back_from_any_route(team):
    server, tokens, _ = team
    rita = http(server, tokens["rita"])
    seen = [rita.get("/v1/models").text, rita.get("/v1/kbs").text, rita.get("/v1/models/rag:skunkworks").text,
            rita.post("/v1/ask", json={"question": DRONE}).text,
            rita.post("/v1/search", json={"query": "prototype drone Kestrel flies Dunmore Field", "k": 20}).text,
            rita.post("/v1/chat/completions", json={"model": "rag", "messages": [
                {"role": "user", "content": DRONE}]}).text]
    with rita.stream("POST", "/v1/chat/completions", json={"model": "rag", "stream": True, "messages": [
            {"role": "user", "content": DRONE}]}) as stream:
        seen.append("".join(stream.iter_text()))
    seen.append(json.dumps(mcp_ask(server.url, tokens["rita"], DRONE)))
    assert json.loads(seen[0])["data"] == [{"id": m, "object": "model", "created": 0, "owned_by": "rag"}
                                           for m in ("rag", "rag:hr")]
    assert all(leaks(text) == [] for text in seen), [leaks(t) for t in seen]
    assert json.loads(seen[3])["passages"] and {p["kb"] for p in json.loads(seen[3])["passages"]} == {"hr"}


def test_without_logins_any_key_is_the_open_server_and_a_token_still_narrows(settings, corpus):
    library = Library.open(settings)
    (library.create("hr").corpus_dir / "hr-notes.txt").write_text(HR)
    narrow = create(library.store, "hr-only", user=None, kbs=["hr"])
    with serve_chat(settings) as server:
        # another site's page cannot post files into it (a multipart form needs no preflight), nor ask
        note = [("files", ("planted.txt", b"The moon is made of cheese.\n", "text/plain"))]
        for origin in ("http://evil.example", "null", server.url.replace("127.0.0.1", "localhost")):
            planted = httpx.post(server.url + "/v1/kbs/default/documents", files=note, headers={"origin": origin})
            assert planted.status_code == 403 and planted.json()["error"]["code"] == "cross_site", origin
        assert not (settings.corpus_dir / "planted.txt").exists()
        same = httpx.post(server.url + "/v1/ask", json={"question": DRONE}, headers={"origin": server.url})
        assert same.status_code == 200  # a page of this server (/docs) may
        # DNS rebinding: another name pointed at 127.0.0.1 reaches the same socket with its own Host; refused on
        # every route (the chat page, gradio's API and file routes, the files, the page view, the API), not only /v1
        port = server.url.rsplit(":", 1)[1]
        routes = ["/v1/models", "/", "/gradio_api/info", "/files/hr/hr-notes.txt", "/docs",
                  "/gradio_api/file=" + str(settings.corpus_dir / "putin-diplomacy.txt")]
        for host, status in ((f"evil.example:{port}", 403), (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200)):
            for route in routes[:1] if status == 200 else routes:
                r = httpx.get(server.url + route, headers={"host": host})
                assert r.status_code == status, (host, route, r.text)
                assert status == 200 or r.json()["error"]["code"] == "host_refused"
                assert "Parental" not in r.text and "Putin" not in r.text
        for route in ("/", "/files/hr/hr-notes.txt", "/docs"):  # the same routes by a loopback name answer
            assert httpx.get(server.url + route, headers={"host": f"localhost:{port}"}).status_code == 200, route
        refused = httpx.post(server.url + "/gradio_api/queue/join", json={}, headers={"host": f"evil.example:{port}"})
        assert refused.status_code == 403
        for key in (None, "sk-anything", "rag_not-a-token"):  # OpenAI's clients must send some key
            assert [m["id"] for m in http(server, key).get("/v1/models").json()["data"]] == [
                "rag", "rag:default", "rag:hr"]
        assert [m["id"] for m in http(server, narrow).get("/v1/models").json()["data"]] == ["rag", "rag:hr"]
        assert http(server, narrow).post("/v1/ask", json={"question": DRONE, "kbs": ["default"]}).status_code == 404


# ---- MCP and /docs ----------------------------------------------------------------------------


def mcp_ask(url: str, token: str, question: str, kbs=None) -> dict:
    """The `ask` tool through the official mcp client over streamable HTTP."""
    import httpx2  # the HTTP client the mcp package uses
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def call():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=SLOW / 1000) as http, \
                Client(streamable_http_client(url + "/mcp", http_client=http)) as client:
            assert {t.name for t in (await client.list_tools()).tools} == {"ask", "search"}
            result = await client.call_tool("ask", {"question": question, **({"kbs": kbs} if kbs else {})})
            return {"error": result.content[0].text} if result.is_error else result.structured_content

    return asyncio.run(call())


def test_the_mcp_client_calls_ask_behind_the_same_tokens(team):
    server, tokens, _ = team
    answer = mcp_ask(server.url, tokens["uma"], DRONE, ["skunkworks"])
    c = answer["citations"][0]
    assert not answer["abstained"] and c["kb"] == "skunkworks" and "41 minutes" in c["text"]
    assert c["text"] == stored(server, "skunkworks", c)[c["start"]:c["end"]]
    refused, missing = (mcp_ask(server.url, tokens["uma-hr"], DRONE, [kb]) for kb in ("skunkworks", "no-such-kb"))
    assert refused == missing and "no knowledge base by that name" in refused["error"]


def test_docs_work_offline(team):
    server, tokens, _ = team
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    links = re.findall(r"""(?:src|href|url)\s*[:=]\s*["']([^"']+)["']""", page.text)
    assert len(links) >= 4 and not [u for u in links if "//" in u or u.startswith("/")], links
    for link in links:
        assert httpx.get(f"{server.url}/{link}").status_code == 200, link
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/v1/chat/completions", "/v1/models", "/v1/ask", "/v1/search", "/v1/kbs", "/v1/kbs/{kb}/documents",
            "/v1/kbs/{kb}/documents/{id}"} <= set(paths)
