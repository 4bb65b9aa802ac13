"""`nmt serve`: the API's contract, its limits and errors, auth, batching, shutdown."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import signal
import socket
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from conftest import REPO, serving
from nmt.checkpoint import load_checkpoint
from nmt.cli import main
from nmt.config import ServeLimits
from nmt.serve import TranslateResponse, create_app
from nmt.translation import Translator

LINES = [line for line in (REPO / "data/test.en").read_text(encoding="utf-8").splitlines()
         if line][:16]


@pytest.fixture(scope="module")
def checkpoint(sample_run):
    return sample_run / "run/best.pt"


@pytest.fixture(scope="module")
def translator(checkpoint):
    return Translator.load(checkpoint, device="cpu", precision="fp32")  # as nmt serve


@contextlib.contextmanager
def client_for(models, api_key=None, raise_server_exceptions=True, **limits):
    app = create_app(models, ServeLimits(**limits), api_key)
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        yield client


@pytest.fixture(scope="module")
def client(translator):
    with client_for({"sample": translator}, max_lines=4, max_line_chars=200, max_beam=4,
                    max_body_bytes=2_000) as client:
        yield client


def wait_until(condition, seconds: float = 120) -> None:
    """Poll `condition` until it holds; fail (rather than hang) after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def post(url: str, body: dict, timeout: float = 120) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def test_schema_documents_the_api_and_matches_what_translate_returns(client, translator):
    schema = client.get("/openapi.json").json()
    assert {"/v1/translate", "/v1/models", "/health"} <= set(schema["paths"])
    translate = schema["paths"]["/v1/translate"]["post"]
    assert {"200", "400", "401", "404", "413", "422", "503"} <= set(translate["responses"])
    components = schema["components"]["schemas"]
    assert set(components["TranslateRequest"]["properties"]) == {
        "model", "text", "beam", "n_best", "attention", "alpha"}
    [result] = translator.translate(["A dog runs."], beam=2, attention=True)
    assert set(components["TranslationOut"]["properties"]) == set(result.to_dict())
    assert set(components["HypothesisOut"]["properties"]) == set(result.hypotheses[0].to_dict())
    assert client.get("/docs").status_code == 404  # FastAPI's docs page would load a CDN's code


@pytest.mark.parametrize("options", [
    {}, {"beam": 1}, {"beam": 3, "n_best": 2, "attention": True, "alpha": 0.6}])
def test_translate_answers_exactly_what_the_translator_gives(client, translator, options):
    text = ["A dog is running in the park.", "", "The woman is reading a book."]
    response = client.post("/v1/translate", json={"text": text, **options})
    assert response.status_code == 200, response.text
    expected = translator.translate(text, **options)
    assert response.json() == {"model": "sample",
                                "translations": [t.to_dict() for t in expected]}
    TranslateResponse.model_validate(response.json())  # the documented schema, exactly


def test_models_and_health(client, translator, checkpoint):
    [info] = client.get("/v1/models").json()["models"]
    assert (info["name"], info["source_language"], info["target_language"]) == ("sample", "en", "de")
    assert info["ensemble_size"] == 1 and info["attention"] is True
    assert info["checkpoints"][0]["parameters"] == sum(
        p.numel() for p in translator.models[0].parameters())
    assert info["checkpoints"][0]["model"]["encoder_hidden_size"] == 32
    assert info["checkpoints"][0]["training_step"] is None  # best.pt: no training state
    assert info["defaults"] == {"beam": 3, "n_best": 1, "alpha": 1.0}
    assert client.get("/health").json() == {"status": "ready", "queued_lines": 0}

    ensemble = Translator.load([checkpoint, checkpoint], device="cpu")
    with client_for({"one": translator, "two": ensemble}) as both:
        assert [m["ensemble_size"] for m in both.get("/v1/models").json()["models"]] == [1, 2]
        response = both.post("/v1/translate", json={"model": "two", "text": ["A dog."]})
        assert response.json()["model"] == "two"
        response = both.post("/v1/translate", json={"text": ["A dog."]})
        assert response.status_code == 422 and "several" in response.json()["error"]
    with client_for({}) as empty:
        assert empty.get("/health").status_code == 503
    app = create_app({"sample": translator})
    assert TestClient(app).get("/health").status_code == 503  # batcher not started


def test_models_names_the_training_step_of_a_checkpoint_with_training_state(sample_run):
    last = sample_run / "run/last.pt"  # holds the training state; best.pt does not
    with client_for({"last": Translator.load(last, device="cpu")}) as client:
        [info] = client.get("/v1/models").json()["models"]
    assert info["checkpoints"][0]["training_step"] == \
        load_checkpoint(last).training_state.progress.step > 0


@pytest.mark.parametrize("body, status, words", [
    ({"text": ["a"] * 5}, 413, "5 lines, over the limit of 4"),
    ({"text": ["ok", "x" * 201]}, 413, "line 2: 201 characters, over the limit of 200"),
    ({"text": []}, 422, "at least one line"),
    ({"text": "A dog."}, 422, "text: Input should be a valid list"),
    ({"text": [1]}, 422, "text.0: Input should be a valid string"),
    ({}, 422, "text: Field required"),
    ({"text": ["a"], "beam_size": 2}, 422, "beam_size: Extra inputs are not permitted"),
    ({"text": ["a"], "model": "nope"}, 404, "unknown model 'nope'; loaded: sample"),
    ({"text": ["a"], "beam": 2, "n_best": 3}, 422, "n_best: must be in [1, beam = 2], got 3"),
    ({"text": ["a"], "beam": 0}, 422, "beam: must be at least 1, got 0"),
    ({"text": ["a"], "beam": 5}, 422, "beam: 5 is over this server's limit of 4"),
    ({"text": ["a"], "alpha": -1}, 422, "alpha: must be >= 0, got -1.0"),
])
def test_bad_requests_get_one_line_naming_the_field_or_limit(client, body, status, words):
    response = client.post("/v1/translate", json=body)
    assert response.status_code == status
    assert words in response.json()["error"] and "\n" not in response.json()["error"]


def test_malformed_json_oversized_bodies_and_overlong_lines(client, translator):
    response = client.post("/v1/translate", content=b'{"text": [',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "malformed JSON" in response.json()["error"]
    response = client.post("/v1/translate", content=b'{"alpha": NaN, "text": ["a"]}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "finite" in response.json()["error"]
    response = client.post("/v1/translate", content=b'{"text": ["\\ud800"]}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "text line 1: not valid Unicode (a lone surrogate)"
    # The size is checked before the body is parsed: this one is not even JSON.
    response = client.post("/v1/translate", content=b"x" * 2_001)
    assert response.status_code == 413
    assert response.json()["error"] == ("request body of 2001 bytes is over the limit of "
                                        "2000 bytes")
    # Without a Content-Length (chunked), counted while it is read.
    response = client.post("/v1/translate", content=iter([b"[" * 1_500, b"[" * 1_500]))
    assert response.status_code == 413 and "over the limit of 2000" in response.json()["error"]
    # Within the character limit but over translate's piece limit: its NmtError, as 422.
    with client_for({"sample": translator}, max_line_chars=10_000,
                    max_body_bytes=100_000) as roomy:
        response = roomy.post("/v1/translate", json={"text": ["A dog.", "dog " * 1_100]})
    assert response.status_code == 422
    assert "input line 2:" in response.json()["error"] and "over the limit of 1000" in \
        response.json()["error"]


def test_unexpected_errors_are_a_500_without_details(translator, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    with client_for({"sample": translator}, raise_server_exceptions=False) as client:
        monkeypatch.setattr(translator, "translate", broken)
        response = client.post("/v1/translate", json={"text": ["A dog."]})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; the server's log has the details"}
    assert client.get("/nowhere").json() == {"error": "Not Found"}


def test_api_key_is_required_on_the_api_only(translator):
    with client_for({"sample": translator}, api_key="s3cret-key") as client:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer s3cret"},
                        {"Authorization": "Basic s3cret-key"}):
            response = client.post("/v1/translate", json={"text": ["A dog."]}, headers=headers)
            assert response.status_code == 401, headers
            assert "API key" in response.json()["error"]
            assert client.get("/v1/models", headers=headers).status_code == 401
        for headers in ({"X-API-Key": "s3cret-key"}, {"Authorization": "Bearer s3cret-key"}):
            response = client.post("/v1/translate", json={"text": ["A dog."]}, headers=headers)
            assert response.status_code == 200
        assert client.get("/health").status_code == 200 and client.get("/").status_code == 200
        # Checked before the body: a stranger's oversized or malformed body gets only a 401.
        assert client.post("/v1/translate", content=b"x" * 2_000_000).status_code == 401


def test_a_line_translates_the_same_alone_and_batched_with_others(translator, monkeypatch):
    """16 concurrent requests, 8 greedy and 8 beam 3, interleaved: two full batches."""
    calls = []
    original = translator.translate

    def recording(lines, **options):
        calls.append((options["beam"], len(lines)))
        return original(lines, **options)

    options = [{"beam": 1}, {"beam": 3, "n_best": 2}]
    alone = {(i, o): original([LINES[i]], **options[o])[0] for i in range(8) for o in (0, 1)}
    monkeypatch.setattr(translator, "translate", recording)
    # Batches of 8 lines, and a first line waits up to a minute for the other 7.
    with client_for({"sample": translator}, batch_size=8, max_wait_ms=60_000) as client:
        def ask(job):
            i, o = job
            return job, client.post("/v1/translate", json={"text": [LINES[i]], **options[o]})

        jobs = [(i, o) for i in range(8) for o in (0, 1)]
        with ThreadPoolExecutor(len(jobs)) as pool:
            answers = list(pool.map(ask, jobs))
    assert sorted(calls) == [(1, 8), (3, 8)]  # each batch: all lines of one option set
    for job, response in answers:
        assert response.status_code == 200
        [got] = response.json()["translations"]
        expected = alone[job]
        assert len(got["hypotheses"]) == len(expected.hypotheses)
        for hypothesis, reference in zip(got["hypotheses"], expected.hypotheses):
            assert hypothesis["text"] == reference.text
            assert hypothesis["score"] == pytest.approx(reference.score, abs=1e-4)


def test_a_full_queue_answers_503_with_retry_after(translator, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    original = translator.translate

    def held(lines, **options):
        entered.set()
        release.wait(60)
        return original(lines, **options)

    monkeypatch.setattr(translator, "translate", held)
    with client_for({"sample": translator}, max_lines=2, queue_size=2, batch_size=1,
                    max_wait_ms=0) as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/v1/translate", json={"text": ["A dog."]})
        assert entered.wait(60)  # the worker is busy with the first request...
        second = pool.submit(client.post, "/v1/translate", json={"text": ["A cat.", "A man."]})
        wait_until(lambda: client.get("/health").json()["queued_lines"] == 2)  # queue full
        refused = client.post("/v1/translate", json={"text": ["A woman."]})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert "queue is full (2 of 2 lines waiting" in refused.json()["error"]
        release.set()
        assert first.result().status_code == 200 and second.result().status_code == 200


def test_serve_command_errors_are_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    empty_key = tmp_path / "key"
    empty_key.write_text("\n")
    cases = [
        (["--model", str(checkpoint)], "expected NAME=CHECKPOINT"),
        (["--model", f"a={checkpoint}", "--model", f"a={checkpoint}"], "given twice"),
        (["--model", "a=missing.pt"], "missing.pt: checkpoint not found"),
        (["--model", f"a={checkpoint}", "--max-lines", "0"], "--max-lines: must be at least 1"),
        (["--model", f"a={checkpoint}", "--threads", "-1"], "--threads: must be >= 0"),
        (["--model", f"a={checkpoint}", "--api-key-file", str(empty_key)], "got nothing"),
        (["--model", f"a={checkpoint}", "--port", str(port)], f"cannot listen on 127.0.0.1:{port}"),
    ]
    for args, message in cases:
        assert main(["-q", "serve", "--device", "cpu", *args]) == 1
        error = capsys.readouterr().err
        assert error.startswith("nmt serve: error: ") and message in error, error
    busy.close()
    # Without the extra installed: what to install, in one line.
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "nmt.serve")
    assert main(["-q", "serve", "--model", f"a={checkpoint}"]) == 1
    assert "pip install 'nmt[serve]'" in capsys.readouterr().err


def test_sigterm_answers_the_request_in_flight_then_exits_0(checkpoint, translator):
    # A lone line waits max-wait-ms for company: long enough to be surely in flight.
    with serving("--model", f"m={checkpoint}", "--device", "cpu", "--max-wait-ms",
                 "3000") as (url, process), ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, f"{url}/v1/translate", {"text": [LINES[0]], "beam": 2})
        wait_until(lambda: get(f"{url}/health")["queued_lines"] == 1)  # the server holds it
        process.send_signal(signal.SIGTERM)
        status, body = answer.result(timeout=120)
        assert process.wait(timeout=120) == 0, "".join(process.log)
    assert status == 200
    assert body["translations"] == [t.to_dict() for t in translator.translate([LINES[0]], beam=2)]
    assert "stopped by SIGTERM" in "".join(process.log)


def test_load_tool_finds_no_errors_and_no_mismatches(live_server, checkpoint, tmp_path):
    spec = importlib.util.spec_from_file_location("load_test", REPO / "tools/load_test.py")
    load_test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_test)
    report = tmp_path / "report.json"
    assert load_test.main(["--url", live_server, "--checkpoint", str(checkpoint), "--model",
                           "sample", "--input", str(REPO / "data/test.en"), "--lines", "20",
                           "--clients", "4", "--requests", "40", "--seconds", "60",
                           "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["requests"] == 40 and result["errors"] == 0 and result["mismatches"] == 0
    # the offline reference runs at the server's precision
    assert result["offline"]["precision"] == get(f"{live_server}/v1/models")["models"][0]["precision"]
    with pytest.raises(SystemExit, match="loopback"):
        load_test.main(["--url", "http://192.0.2.1:8000", "--checkpoint", str(checkpoint)])
