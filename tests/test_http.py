"""The one HTTP client for provider and enrichment calls (hookyard.http).

The other side is faked at the transport (httpx.MockTransport), so each test says what the
service answers, try by try; the client's sleeps are recorded instead of slept.
"""

from __future__ import annotations

import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from hookyard.http import ApiClient, ApiError, Exchange
from tests.support import free_port

BASE = 0.5  # backoff_base: the first pause is within [BASE/2, BASE]

Answer = httpx.Response | Exception


@dataclass
class Service:
    """Answers the requests it receives with the next of `answers` (the last one repeats)."""

    answers: list[Answer]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def call() -> Iterator[Callable[..., tuple[Service, list[float], ApiClient]]]:
    clients: list[ApiClient] = []

    def make(*answers: Answer, **options: object) -> tuple[Service, list[float], ApiClient]:
        service, slept = Service(list(answers)), []
        client = ApiClient(
            "https://api.example.com",
            provider="acme",
            transport=httpx.MockTransport(service),
            backoff_base=BASE,
            sleep=slept.append,
            **options,  # type: ignore[arg-type]
        )
        clients.append(client)
        return service, slept, client

    yield make
    for client in clients:
        client.close()


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused")


def test_a_connection_that_never_opened_is_tried_again_even_for_a_post(call: Callable) -> None:
    service, slept, client = call(refused(), httpx.ConnectTimeout("slow"), httpx.Response(201))
    assert client.request("POST", "/things", json={"a": 1}).status_code == 201
    assert len(service.requests) == 3
    assert len(slept) == 2 and BASE / 2 <= slept[0] <= BASE and BASE <= slept[1] <= 2 * BASE


@pytest.mark.parametrize(
    "answer",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("closed"), httpx.Response(503)],
    ids=["read timeout", "dropped", "503"],
)
def test_a_post_that_may_have_arrived_is_not_repeated(call: Callable, answer: Answer) -> None:
    service, slept, client = call(answer, httpx.Response(201))
    with pytest.raises(ApiError) as error:
        client.request("POST", "/things", json={"a": 1})
    assert error.value.retryable  # the caller may try later, knowing what it sends
    assert len(service.requests) == 1 and slept == []


@pytest.mark.parametrize(
    ("method", "options"),
    [("GET", {}), ("PUT", {}), ("DELETE", {}), ("POST", {"idempotent": True}),
     ("PATCH", {"idempotent": True})],
)  # fmt: skip
def test_an_idempotent_request_is_repeated_on_what_may_pass(
    call: Callable, method: str, options: dict[str, bool]
) -> None:
    service, slept, client = call(
        httpx.Response(503), httpx.ReadTimeout("slow"), httpx.Response(200, json={"ok": True})
    )
    assert client.request(method, "/things", **options).json() == {"ok": True}
    assert len(service.requests) == 3
    assert BASE / 2 <= slept[0] <= BASE and BASE <= slept[1] <= 2 * BASE


def test_the_tries_run_out_with_the_last_answer(call: Callable) -> None:
    body = {"message": "down for maintenance"}
    service, slept, client = call(httpx.Response(502, json=body), max_attempts=4)
    with pytest.raises(ApiError) as error:
        client.request("GET", "/things")
    assert len(service.requests) == 4 and len(slept) == 3
    assert (error.value.status, error.value.retryable) == (502, True)
    assert str(error.value) == "acme: GET /things: 502 down for maintenance"


def test_retry_after_is_waited_for_and_a_longer_one_is_the_callers(call: Callable) -> None:
    service, slept, client = call(
        httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)
    )
    assert client.request("GET", "/things").status_code == 200
    assert slept == [7.0]  # at least Retry-After, more than the backoff's BASE

    service, slept, client = call(httpx.Response(503, headers={"Retry-After": "120"}))
    with pytest.raises(ApiError) as error:
        client.request("GET", "/things")
    assert (error.value.retryable, error.value.retry_after) == (True, 120.0)
    assert len(service.requests) == 1 and slept == []  # 120 s is longer than it blocks


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (httpx.Response(400, json={"message": "name is required"}), "400 name is required"),
        (httpx.Response(401, json={"error": {"message": "bad token"}}), "401 bad token"),
        (httpx.Response(422, json=[{"description": "a"}, {"message": "b"}]), "422 a; b"),
        (httpx.Response(404, text="no such thing"), "404 no such thing"),
        (httpx.Response(302, headers={"location": "/elsewhere"}), "302 "),
    ],
)
def test_a_refusal_raises_at_once_in_the_services_words(
    call: Callable, answer: httpx.Response, words: str
) -> None:
    service, slept, client = call(answer, httpx.Response(200))
    with pytest.raises(ApiError) as error:
        client.request("GET", "/things")
    assert str(error.value).startswith(f"acme: GET /things: {words}")
    assert error.value.status == answer.status_code and not error.value.retryable
    assert len(service.requests) == 1 and slept == []


def test_a_status_the_caller_handles_is_returned(call: Callable) -> None:
    _, _, client = call(httpx.Response(404))
    assert client.request("GET", "/things/1", ok_statuses=frozenset({404})).status_code == 404


def test_a_request_that_cannot_be_sent_is_not_retried() -> None:
    slept: list[float] = []
    with ApiClient(provider="acme", sleep=slept.append) as client:  # httpx's own transport
        for url in ("ftp://files.example.com/x", "http://"):
            with pytest.raises(ApiError) as error:
                client.request("GET", url)
            assert not error.value.retryable and error.value.status is None
    assert slept == []


def test_errors_show_the_path_never_the_query_or_credentials(call: Callable) -> None:
    _, _, client = call(httpx.Response(403, text="no"))
    with pytest.raises(ApiError) as error:
        client.request("GET", "https://user:s3cret@other.example.com/x?token=t0ken")
    assert str(error.value) == "acme: GET /x: 403 no"


def test_requests_keep_to_the_rate(call: Callable) -> None:
    _, slept, client = call(httpx.Response(200), rate_per_second=10)
    for _ in range(4):
        client.request("GET", "/things")
    # Spaced 0.1 s apart: the second waits about 0.1 s, the third 0.2, the fourth 0.3 (the
    # recorded sleeps do not pass time).
    assert len(slept) == 3 and 0.5 < sum(slept) <= 0.6


# -- exchange: one POST on a kept-alive connection (socket + httptools), against a real server


class Receiver(socketserver.ThreadingTCPServer):
    """A local HTTP/1.1 server written at the byte level, to answer as real servers do
    (keep-alive, `Connection: close`, chunked, long, slow, closing an idle connection)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ReceiverHandler(socketserver.StreamRequestHandler):
    server: Receiver

    def handle(self) -> None:
        self.server.connections += 1
        served = 0
        while True:
            line = self.rfile.readline()
            if not line:
                return
            path = line.split()[1].decode()
            headers: dict[str, str] = {}
            while (header := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = self.rfile.read(int(headers.get("content-length", "0")))
            self.server.requests.append((path, headers, body))
            served += 1
            if path == "/drop" or (path == "/idle-close" and served == 2):
                return  # closes without answering a byte
            if path == "/slow":
                time.sleep(1)
            try:
                self.wfile.write(ANSWERS.get(path, ANSWERS["/ok"]))
            except OSError:
                return
            if path in ("/close", "/until-close"):
                return


ANSWERS = {
    "/ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Twice: a\r\nX-Twice: b\r\n\r\nok",
    "/close": b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
    "/large": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000,
    "/early": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    b"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\nlate",
    "/until-close": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end",
    "/no-content": b"HTTP/1.1 204 No Content\r\n\r\n",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def post(client: ApiClient, url: str, **options: Any) -> Exchange:
    return client.exchange("POST", url, content=b'{"a":1}', headers={"x-id": "m1"}, **options)


def test_an_exchange_keeps_its_connection_alive(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        answers = [post(client, f"{receiver.url}/ok?n={n}") for n in range(3)]
    assert [(a.status, a.body, a.error) for a in answers] == [(200, b"ok", None)] * 3
    assert answers[0].headers["x-twice"] == "a, b"
    assert receiver.connections == 1
    path, headers, body = receiver.requests[0]
    assert (path, body, headers["x-id"]) == ("/ok?n=0", b'{"a":1}', "m1")
    assert headers["user-agent"].startswith("hookyard/")


def test_a_server_that_closes_after_each_answer_gets_a_new_connection(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        answers = [post(client, f"{receiver.url}/close") for _ in range(3)]
    assert [(a.status, a.body) for a in answers] == [(503, b"busy")] * 3
    assert receiver.connections == len(receiver.requests) == 3


def test_a_chunked_answer_is_read_and_its_connection_kept(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        answers = [post(client, f"{receiver.url}/chunked") for _ in range(2)]
    assert [(a.status, a.body) for a in answers] == [(200, b"hello")] * 2
    assert receiver.connections == 1


def test_a_large_answer_is_cut_and_its_connection_not_kept(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        large = post(client, f"{receiver.url}/large")
        small = post(client, f"{receiver.url}/large", max_body=10)
        after = post(client, f"{receiver.url}/ok")
    assert (large.status, large.body) == (200, b"x" * 2048)
    assert small.body == b"x" * 10
    assert after.body == b"ok"
    assert receiver.connections == 3


def test_a_connection_the_server_closed_while_idle_is_resent_once(receiver: Receiver) -> None:
    """The second request on the kept connection is read, then the connection closes
    unanswered (a server's idle timeout at that moment): it goes again on a new one."""
    with ApiClient(max_attempts=1) as client:
        first = post(client, f"{receiver.url}/idle-close")
        second = post(client, f"{receiver.url}/idle-close")
    assert (first.status, second.status, second.error) == (200, 200, None)
    assert receiver.connections == 2
    assert len(receiver.requests) == 3  # at least once: the receiver dedupes on its id


def test_a_new_connection_closed_unanswered_is_not_resent(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        answer = post(client, f"{receiver.url}/drop")
    assert (answer.status, answer.error_type, answer.sent) == (None, "RemoteProtocolError", True)
    assert len(receiver.requests) == 1


def test_a_slow_answer_times_out(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        answer = post(client, f"{receiver.url}/slow", timeout=0.2)
        assert (answer.status, answer.error_type, answer.sent) == (None, "ReadTimeout", True)
        assert answer.error is not None and answer.error.startswith("ReadTimeout")
        assert post(client, f"{receiver.url}/ok").status == 200  # the late answer is not read


def test_a_refused_connection_was_not_sent() -> None:
    with ApiClient(max_attempts=1) as client:
        answer = post(client, f"http://127.0.0.1:{free_port()}/hook")
    assert (answer.status, answer.error_type, answer.sent) == (None, "ConnectError", False)
    assert answer.error is not None and answer.error.startswith("ConnectError: ")


def test_a_url_that_cannot_be_sent_to(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        assert post(client, "ftp://example.com/x").error_type == "UnsupportedProtocol"
        assert post(client, "http:///x").error_type == "InvalidURL"
    assert not receiver.requests


def test_credentials_in_the_url_are_basic_authorization(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        host = receiver.url.removeprefix("http://")
        assert post(client, f"http://user:p%40ss@{host}/ok").status == 200
    assert receiver.requests[0][1]["authorization"] == "Basic dXNlcjpwQHNz"


def test_an_interim_answer_is_passed_over(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        answers = [post(client, f"{receiver.url}/early") for _ in range(2)]
    assert [(a.status, a.body) for a in answers] == [(202, b"late")] * 2
    assert "link" not in answers[0].headers
    assert receiver.connections == 1


def test_a_204_has_no_body_and_keeps_its_connection(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        answers = [post(client, f"{receiver.url}/no-content") for _ in range(3)]
    assert [(a.status, a.body, a.error) for a in answers] == [(204, b"", None)] * 3
    assert receiver.connections == 1


def test_an_answer_ended_by_its_connection_is_read_whole(receiver: Receiver) -> None:
    with ApiClient(max_attempts=1) as client:
        first = post(client, f"{receiver.url}/until-close")
        second = post(client, f"{receiver.url}/ok")
    assert (first.status, first.body, first.error) == (200, b"to the end", None)
    assert (second.status, receiver.connections) == (200, 2)


@pytest.mark.parametrize(
    "headers",
    [{"x-id": "a\r\nx-evil: 1"}, {"x-id": "a\nb"}, {"x id": "a"}, {"x-id": "caf\u00e9\u20ac"}],
)
def test_a_header_that_cannot_be_sent_as_given_sends_nothing(
    receiver: Receiver, headers: dict[str, str]
) -> None:
    with ApiClient(max_attempts=1) as client:
        answer = client.exchange("POST", f"{receiver.url}/ok", content=b"{}", headers=headers)
        assert (answer.status, answer.error_type, answer.sent) == (
            None,
            "LocalProtocolError",
            False,
        )
        assert post(client, f"{receiver.url}/ok").status == 200  # the client still serves
    assert [path for path, _, _ in receiver.requests] == ["/ok"]


def test_https_is_verified_against_the_systems_authorities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver whose certificate no trusted authority signed is refused before anything
    is sent; once its authority is trusted (SSL_CERT_FILE, as an operator would add it to
    the system's store) the same receiver is answered over one kept-alive TLS connection."""
    ca = trustme.CA()
    server = Receiver()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(tls)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://localhost:{server.server_address[1]}/ok"
    try:
        with ApiClient(max_attempts=1) as client:
            refused = post(client, url)
        assert (refused.status, refused.error_type, refused.sent) == (None, "ConnectError", False)
        assert refused.error is not None and "CERTIFICATE_VERIFY_FAILED" in refused.error
        assert server.requests == []
        authority = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(authority))
        monkeypatch.setenv("SSL_CERT_FILE", str(authority))
        with ApiClient(max_attempts=1) as client:
            answers = [post(client, url) for _ in range(2)]
        assert [(a.status, a.body, a.error) for a in answers] == [(200, b"ok", None)] * 2
        assert len(server.requests) == 2 and server.connections == 1
    finally:
        server.shutdown()
        server.server_close()
