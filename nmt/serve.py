"""`nmt serve`: a REST API and a web page over `Translator`, batching lines across requests.

    POST /v1/translate  {"model"?, "text": [lines], "beam"?, "n_best"?, "attention"?, "alpha"?}
    GET  /v1/models     what is loaded: languages, checkpoints, parameters, defaults
    GET  /health        200 {"status": "ready", ...}, or 503
    GET  /              the page; /openapi.json describes the API

Every line of every request goes through one `Batcher`, whose worker thread calls
`Translator.translate`: the server has no decoding of its own, and a line's
translation is the same whatever it was batched with. Errors are JSON
``{"error": "..."}`` with a 4xx status naming the limit or the field at fault;
the API key and the body's size are checked before the body is read. No
request can make the server read or write a file: the page is read into memory
when the app is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import ipaddress
import logging
import signal
import socket
from importlib import resources
from pathlib import Path
from typing import Any, Hashable, Optional, Sequence, Union

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from nmt import __version__
from nmt.batching import Batcher, Closed, QueueFull
from nmt.config import ServeLimits
from nmt.errors import NmtError
from nmt.translation import Translator

log = logging.getLogger(__name__)

PAGE_ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
               "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
               "/static/style.css": ("style.css", "text/css; charset=utf-8")}
# The page may load nothing but its own assets and talk to nothing but this server.
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TranslateRequest(_Strict):
    model: Optional[str] = Field(None, description="a name from /v1/models; optional when "
                                 "one model is loaded")
    text: list[str] = Field(description="the lines to translate, one sentence each")
    beam: Optional[int] = Field(None, description="beam size, 1 = greedy (default: the "
                                "checkpoint's decoding.beam_size)")
    n_best: Optional[int] = Field(None, description="hypotheses per line, at most beam")
    attention: bool = Field(False, description="add each hypothesis's attention matrix and "
                            "word alignment")
    alpha: Optional[float] = Field(None, allow_inf_nan=False,
                                   description="GNMT length penalty (default: the checkpoint's)")


class HypothesisOut(_Strict):
    text: str
    score: float = Field(description="log-probability / GNMT length penalty: the ranking")
    logprob: float = Field(description="log-probability per piece, EOS included")
    perplexity: float
    pieces: list[str] = Field(description="target pieces, without EOS")
    piece_logprobs: list[float] = Field(description="one per piece, then one for EOS")
    reached_limit: bool = Field(description="cut at the length limit")
    attention: Optional[list[list[float]]] = Field(
        None, description="with attention: one row per target piece and one for EOS, one "
        "column per source piece")
    alignment: Optional[str] = Field(None, description="with attention: Pharaoh i-j pairs")


class TranslationOut(_Strict):
    source: str
    source_pieces: list[str]
    hypotheses: list[HypothesisOut] = Field(description="best first")


class TranslateResponse(_Strict):
    model: str
    translations: list[TranslationOut] = Field(description="one per input line, in order")


class CheckpointInfo(_Strict):
    parameters: int
    training_step: Optional[int] = None
    model: dict[str, Union[bool, int, float, str]] = Field(description="its model config")


class ModelInfo(_Strict):
    name: str
    source_language: str
    target_language: str
    ensemble_size: int
    checkpoints: list[CheckpointInfo]
    source_vocabulary: int
    target_vocabulary: int
    attention: bool = Field(description="whether attention can be asked for")
    defaults: dict[str, Union[int, float]] = Field(description="beam, n_best, alpha")
    precision: str
    device: str


class ModelsResponse(_Strict):
    models: list[ModelInfo]


class ErrorOut(_Strict):
    error: str


class HealthOut(_Strict):
    status: str = Field(description="ready, or unavailable (no model, or stopping)")
    queued_lines: int = Field(description="lines waiting for the batcher")


_ERRORS: dict[Union[int, str], dict[str, Any]] = {
    status: {"model": ErrorOut, "description": what} for status, what in [
        (400, "malformed JSON"), (401, "missing or wrong API key"), (404, "unknown model"),
        (413, "a request limit exceeded: body size, lines, characters per line"),
        (422, "invalid field or option"), (503, "queue full (see Retry-After) or stopping")]}


def describe(name: str, translator: Translator) -> dict[str, Any]:
    """What /v1/models says of one loaded model (one checkpoint or an ensemble)."""
    config, decoding = translator.checkpoints[0].config, translator.decoding
    return {
        "name": name, "source_language": config.data.src_lang,
        "target_language": config.data.tgt_lang, "ensemble_size": len(translator.checkpoints),
        "checkpoints": [
            {"parameters": sum(t.numel() for t in c.model_state.values()),
             # best.pt carries no training state, so only last.pt knows its step
             "training_step": c.training_state.progress.step if c.training_state else None,
             "model": dataclasses.asdict(c.config.model)} for c in translator.checkpoints],
        "source_vocabulary": len(translator.src_vocab),
        "target_vocabulary": len(translator.tgt_vocab),
        "attention": any(c.config.model.attention != "none" for c in translator.checkpoints),
        "defaults": {"beam": decoding.beam_size, "n_best": decoding.n_best,
                     "alpha": decoding.length_penalty},
        "precision": translator.precision, "device": str(translator.device)}


class _Guard:
    """What is checked before the body is read: the API key (on /v1/) and the body's size."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, api_key: Optional[str]):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.api_key and scope["path"].startswith("/v1/") and not self._authorised(headers):
            response = JSONResponse(
                {"error": "missing or wrong API key: send 'Authorization: Bearer KEY' or "
                          "'X-API-Key: KEY'"}, 401, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        limit = self.max_body_bytes
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > limit:
            response = JSONResponse({"error": f"request body of {length.decode(errors='replace')} "
                                              f"bytes is over the limit of {limit} bytes"}, 413)
            return await response(scope, receive, send)
        received = 0

        async def receive_within_limit():  # for bodies sent without a Content-Length
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, f"request body over the limit of {limit} bytes")
            return message

        await self.app(scope, receive_within_limit, send)

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key")
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if given is None and scheme.lower() == b"bearer":
            given = token.strip()
        return given is not None and hmac.compare_digest(given, self.api_key)


def create_app(models: dict[str, Translator], limits: Optional[ServeLimits] = None,
               api_key: Optional[str] = None) -> FastAPI:
    """The API and the page over `models` (name -> translator); one batcher for all of them.

    The batcher's worker runs while the app's lifespan does (uvicorn, or a
    `with TestClient(app)` block); at shutdown it translates what it has accepted.
    """
    limits = limits or ServeLimits()
    for key, problem in limits.check():
        raise NmtError(f"{key}: {problem}, got {getattr(limits, key)!r}")
    batcher = Batcher(lambda key, lines, first: _translate(models, limits, key, lines, first),
                      limits.batch_size, limits.max_wait_ms / 1000, limits.queue_size)
    described = {name: describe(name, translator) for name, translator in models.items()}
    page = {path: (resources.files("nmt").joinpath("static", name).read_bytes(), media)
            for path, (name, media) in PAGE_ASSETS.items()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            await asyncio.to_thread(batcher.close)  # everything accepted gets its answer
            log.info("batcher drained and stopped")

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN.
    app = FastAPI(title="nmt", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Neural machine translation: translate lines with the loaded "
                  "models. Lines from concurrent requests are translated together in batches.")
    app.add_middleware(_Guard, max_body_bytes=limits.max_body_bytes, api_key=api_key)
    _add_error_handlers(app)

    @app.post("/v1/translate", response_model=TranslateResponse, responses=_ERRORS)
    async def translate(body: TranslateRequest) -> Response:
        """Translate lines; one translation per line, in order, hypotheses best first."""
        name = _model_name(models, body.model)
        _check_lines(body.text, limits)
        decoding = models[name].options(beam_size=body.beam, n_best=body.n_best,
                                        length_penalty=body.alpha)
        if decoding.beam_size > limits.max_beam:
            raise HTTPException(422, f"beam: {decoding.beam_size} is over this server's limit "
                                f"of {limits.max_beam}")
        key = (name, decoding.beam_size, decoding.n_best, decoding.length_penalty, body.attention)
        try:
            future = batcher.submit(key, body.text)
        except QueueFull as error:
            raise HTTPException(503, f"busy: {error}; retry later",
                                headers={"Retry-After": "1"}) from None
        except Closed as error:
            raise HTTPException(503, str(error)) from None
        translations = await asyncio.wrap_future(future)
        # Plain data straight to JSON: the response model documents it (and the tests
        # check it against the schema), re-validating every float would only cost time.
        return JSONResponse({"model": name, "translations": translations})

    @app.get("/v1/models", response_model=ModelsResponse, responses={401: _ERRORS[401]})
    async def list_models() -> Response:
        """The loaded models: languages, checkpoints (ensemble members), defaults."""
        return JSONResponse({"models": list(described.values())})

    @app.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
    async def health() -> Response:
        """Ready when models are loaded and the batcher runs (not while stopping)."""
        ready = bool(models) and batcher.running
        return JSONResponse({"status": "ready" if ready else "unavailable",
                             "queued_lines": batcher.waiting}, 200 if ready else 503)

    for path, (content, media) in page.items():
        app.get(path, include_in_schema=False)(_asset(content, media))
    return app


def _asset(content: bytes, media: str):
    async def asset() -> Response:
        return Response(content, media_type=media,
                        headers={"Content-Security-Policy": PAGE_POLICY})
    return asset


def _translate(models: dict[str, Translator], limits: ServeLimits, key: Hashable,
               lines: list[str], first_line_number: int) -> list[dict[str, Any]]:
    """The batcher's work: one `Translator.translate` call for lines sharing `key`."""
    name, beam, n_best, alpha, attention = key
    translations = models[name].translate(
        lines, beam=beam, n_best=n_best, attention=attention, alpha=alpha,
        batch_size=limits.batch_size, cut_long_lines=False, first_line_number=first_line_number)
    return [t.to_dict() for t in translations]


def _model_name(models: dict[str, Translator], asked: Optional[str]) -> str:
    if asked is None:
        if len(models) == 1:
            return next(iter(models))
        raise HTTPException(422, f"model: required when several are loaded "
                            f"({', '.join(models)})")
    if asked not in models:
        raise HTTPException(404, f"model: unknown model {asked!r}; loaded: "
                            f"{', '.join(models) or 'none'}")
    return asked


def _check_lines(lines: list[str], limits: ServeLimits) -> None:
    if not lines:
        raise HTTPException(422, "text: give at least one line")
    if len(lines) > limits.max_lines:
        raise HTTPException(413, f"text: {len(lines)} lines, over the limit of "
                            f"{limits.max_lines} per request")
    for number, line in enumerate(lines, 1):
        if len(line) > limits.max_line_chars:
            raise HTTPException(413, f"text line {number}: {len(line)} characters, over the "
                                f"limit of {limits.max_line_chars} per line")
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPException(422, f"text line {number}: not valid Unicode (a lone "
                                "surrogate)") from None


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is {"error": one line}; never a traceback."""

    @app.exception_handler(StarletteHTTPException)  # also the router's 404 and 405
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return JSONResponse({"error": str(error.detail)}, error.status_code,
                            headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        problems = error.errors()
        if any(p["type"] == "json_invalid" for p in problems):
            detail = problems[0].get("ctx", {}).get("error", "")
            return JSONResponse({"error": f"malformed JSON: {detail}"}, 400)
        return JSONResponse({"error": "; ".join(f"{_field(p['loc'])}: {p['msg']}"
                                                for p in problems)}, 422)

    @app.exception_handler(NmtError)
    async def refused(request: Request, error: NmtError) -> Response:
        return JSONResponse({"error": str(error)}, 422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return JSONResponse({"error": "internal error; the server's log has the details"}, 500)


def _field(location: Sequence[Any]) -> str:
    """('body', 'text', 2) -> 'text.2'"""
    return ".".join(str(part) for part in location if part != "body") or "body"


def read_api_key(path: str) -> str:
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise NmtError(f"{path}: cannot read the API key: {error}") from None
    if not key or any(c.isspace() for c in key):
        raise NmtError(f"{path}: expected one API key (no spaces), got "
                       f"{'nothing' if not key else 'several words'}")
    return key


def run_server(model_paths: dict[str, Sequence[str]], host: str = "127.0.0.1", port: int = 8000,
               limits: Optional[ServeLimits] = None, api_key_file: Optional[str] = None,
               device: str = "auto", precision: str = "fp32") -> int:
    """Load the models, listen, serve until SIGTERM or Ctrl-C, then stop gracefully.

    On a signal uvicorn stops accepting connections, waits for the requests in
    flight, and the lifespan drains the batcher; then this returns 0.
    """
    api_key = read_api_key(api_key_file) if api_key_file else None
    models = {}
    for name, paths in model_paths.items():
        models[name] = Translator.load(paths, device, precision)
        log.info("model %s: %s (%d checkpoint%s)", name, ", ".join(map(str, paths)), len(paths),
                 "s" if len(paths) > 1 else "")
    app = create_app(models, limits, api_key)
    sock = _listen(host, port)
    address = sock.getsockname()
    where = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    url = f"http://{where}:{address[1]}"
    if api_key is None and not _is_loopback(address[0]):
        log.warning("listening on %s without --api-key-file: anyone who reaches this port "
                    "can use the server", address[0])
    config = uvicorn.Config(app, log_config=None, access_log=False, server_header=False,
                            lifespan="on", ws="none")
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handler found at start; this one makes that the normal end (exit status 0).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: log.info("stopped by %s",
                                                             signal.Signals(signum).name))
    log.info("serving on %s (page %s/, API %s/v1, schema %s/openapi.json)", url, url, url, url)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # from now on connections wait for uvicorn rather than fail
    except OSError as error:
        raise NmtError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sock


def _is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False
