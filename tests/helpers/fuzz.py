"""Schemathesis against a served app: generated requests, valid and invalid, never get a 5xx.

:class:`Fuzz` sends cases of every operation of an OpenAPI document to a running
service over real HTTP: first schemathesis' coverage cases (each parameter and body
field at and past its bounds, wrong types, missing and unknown fields, unexpected
methods), then Hypothesis-generated ones, both what the document allows (positive) and
what it does not (negative). Integers are now and then swapped for extremes (2**63,
10**30, -2**63 - 1...), which random generation rarely reaches and databases choke on.
Each response is checked:

- no 5xx, ever;
- an error body is ``{"error": "<message>"}`` (docs/api.md, "Errors");
- with a valid token, a 2xx response conforms to the document (status code, content
  type, body schema);
- with a bad token (:func:`bad_credentials`: none, garbage, forged, tampered,
  expired...), no operation but the ``public`` ones answers below 400, and a 401 carries
  the ``WWW-Authenticate`` challenge.

Problems are collected, one line per operation, credentials, status and kind, with a
``curl`` to reproduce the first request that showed it, rather than raised: one run
reports them all, and nothing is shrunk. Generation is derandomized, so a run sends the
same requests every time.
"""

from __future__ import annotations

import base64
import random
import socket
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shipyard.service import TokenSigner

__all__ = [
    "EXTREME_INTEGERS",
    "Fuzz",
    "FuzzCase",
    "Operation",
    "Prepare",
    "bad_credentials",
    "bearer",
    "load_schema",
    "no_waiting",
    "raw_exchange",
    "raw_status",
    "steer",
]

#: An operation of an OpenAPI document, and a case of one.
Operation = APIOperation[Any, Any, Any, Any]
FuzzCase = Case[Operation]

#: Checks of a 2xx response against the document.
CONFORMANCE: list[CheckFunction] = [
    status_code_conformance, content_type_conformance, response_schema_conformance,
]

#: Integers past what a 32- or 64-bit column holds, and the last ones that fit.
EXTREME_INTEGERS = (2**31, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1)

#: A secret no installation under test uses, to forge tokens with.
_OTHER_SECRET = b"not-the-installation-secret-0123456789"

#: Changes a case before it is sent (to point it at real data, or to cap a wait); the
#: random generator is the case's own, so a run makes the same changes every time.
Prepare = Callable[[FuzzCase, random.Random], None]


def bearer(token: str) -> dict[str, str]:
    """The header that sends ``token``."""
    return {"Authorization": f"Bearer {token}"}


def _basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def bad_credentials(signer: TokenSigner) -> dict[str, dict[str, str]]:
    """Headers that must never authenticate, by what is wrong with them."""
    good = signer.issue("admin", ["admin"])
    forged = TokenSigner(_OTHER_SECRET).issue("admin", ["admin"])
    expired = signer.issue("admin", ["admin"], ttl=-60)
    # A real signature on another payload: the scopes were edited after signing.
    weak_payload = signer.issue("nobody", [])[3:].split(".")[0]
    tampered = f"sy_{weak_payload}.{good.split('.')[1]}"
    return {
        "none": {},
        "garbage": bearer("not-a-token"),
        "no signature": bearer(good.split(".")[0]),
        "forged": bearer(forged),
        "tampered": bearer(tampered),
        "expired": bearer(expired),
        "forged basic": _basic("git", forged),
        "expired basic": _basic("git", expired),
        "malformed basic": {"Authorization": "Basic !!not base64!!"},
        "empty bearer": {"Authorization": "Bearer "},
        "unknown scheme": {"Authorization": f"Digest {good}"},
    }


def load_schema(document: Mapping[str, Any], base_url: str) -> BaseSchema:
    """The OpenAPI ``document``, its requests going to ``base_url``."""
    schema = schemathesis.openapi.from_dict(dict(document))
    schema.config.update(base_url=base_url)
    return schema


def steer(
    case: FuzzCase, rng: random.Random, real: Mapping[str, list[Any]], chance: float = 0.6
) -> None:
    """Set (each with probability ``chance``) the operation's parameters, and fields of a
    JSON body, named in ``real`` to real values, so cases get past "not found" into the
    code that reads what exists."""
    declared = {
        (p.get("in"), p.get("name")) for p in case.operation.definition.raw.get("parameters", [])
    }
    locations = (("path", case.path_parameters), ("query", case.query), ("header", case.headers))
    for location, container in locations:
        if not isinstance(container, dict):
            continue
        for name in sorted(real):
            if (location, name) in declared and rng.random() < chance:
                container[name] = rng.choice(real[name])
    if isinstance(case.body, dict):
        for name in sorted(set(case.body) & set(real)):
            if rng.random() < chance:
                case.body[name] = rng.choice(real[name])


def no_waiting(case: FuzzCase) -> None:
    """Turn a long poll into a poll: a ``wait`` that is a positive number becomes 0 (other
    values stay, to be refused), and ``follow`` is off."""
    if not isinstance(case.query, dict):
        return
    if "wait" in case.query:
        try:
            wait = float(case.query["wait"])
        except (TypeError, ValueError):
            wait = -1.0
        if wait > 0:
            case.query["wait"] = 0
    if "follow" in case.query:
        case.query["follow"] = "false"


def _integer_parameters(operation: Operation) -> set[str]:
    """Path and query parameters whose schema allows an integer."""
    names = set()
    for parameter in operation.definition.raw.get("parameters", []):
        schema = parameter.get("schema", {})
        options = [schema, *schema.get("anyOf", [])]
        if parameter.get("in") in ("path", "query") and any(o.get("type") == "integer" for o in options):
            names.add(parameter["name"])
    return names


def _push_to_extremes(case: FuzzCase, rng: random.Random, integers: set[str]) -> None:
    """Now and then, an integer parameter or body field becomes one of the extremes."""
    for container in (case.path_parameters, case.query):
        if isinstance(container, dict):
            for name in sorted(set(container) & integers):
                if rng.random() < 0.15:
                    container[name] = rng.choice(EXTREME_INTEGERS)
    if isinstance(case.body, dict):
        for name, value in sorted(case.body.items()):
            if isinstance(value, int) and not isinstance(value, bool) and rng.random() < 0.15:
                case.body[name] = rng.choice(EXTREME_INTEGERS)


@dataclass
class Fuzz:
    """One pass over a schema's operations with some credentials; what it found."""

    schema: BaseSchema
    #: Headers to send, by name; each case goes with one of them.
    credentials: dict[str, dict[str, str]]
    #: Whether ``credentials`` are valid (conformance is checked) or bad (refusal is).
    valid: bool
    #: Hypothesis-generated cases per operation (after the coverage cases).
    max_examples: int = 10
    #: Whether to send schemathesis' coverage cases first.
    coverage: bool = True
    #: ``METHOD /path`` of operations to leave out (long polls and streams).
    skip: Collection[str] = ()
    #: ``METHOD /path`` of operations that need no token.
    public: Collection[str] = ("GET /healthz", "GET /metrics")
    prepare: Prepare | None = None
    problems: list[str] = field(default_factory=list)
    #: ``METHOD /path`` to how many answers of each status it got.
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    _seen: set[str] = field(default_factory=set)

    @property
    def sent(self) -> int:
        """How many requests were sent."""
        return sum(sum(c.values()) for c in self.statuses.values())

    def operations(self) -> list[Operation]:
        """The operations fuzzed: all of the document's but ``skip``."""
        found = []
        for result in self.schema.get_all_operations():
            if not isinstance(result, Ok):
                raise AssertionError(f"an operation of the document is not valid: {result.err()}")
            found.append(result.ok())
        return [op for op in found if _key(op) not in self.skip]

    def run(self) -> Fuzz:
        """Send the cases of every operation; ``self``, its ``problems`` filled in."""
        with requests.Session() as session:
            for operation in self.operations():
                if self.coverage:
                    for index, case in enumerate(self._coverage_cases(operation)):
                        self._send(operation, case, random.Random(index), session)
                self._generated(operation, session)
        return self

    def _coverage_cases(self, operation: Operation) -> Iterator[FuzzCase]:
        config = self.schema.config.generation_for(operation=operation)
        yield from self.schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=config
        )

    def _generated(self, operation: Operation, session: requests.Session) -> None:
        modes = [operation.as_strategy(GenerationMode.POSITIVE)]
        if _negatable(operation):
            modes.append(operation.as_strategy(GenerationMode.NEGATIVE))
        cases = st.one_of(modes)

        @hypothesis_settings(
            max_examples=self.max_examples, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck), print_blob=False,
        )
        @given(case=cases, rng=st.randoms(use_true_random=True))
        def check(case: FuzzCase, rng: random.Random) -> None:
            self._send(operation, case, rng, session)

        check()

    def _send(
        self, operation: Operation, case: FuzzCase, rng: random.Random, session: requests.Session
    ) -> None:
        who = rng.choice(sorted(self.credentials))
        if self.prepare is not None:
            self.prepare(case, rng)
        _push_to_extremes(case, rng, _integer_parameters(operation))
        headers = self.credentials[who]
        response = case.call(session=session, headers=headers, timeout=60)
        self.statuses[_key(operation)][response.status_code] += 1
        for problem in self._judge(operation, case, response, headers):
            line = f"{_key(operation)} [{who}] -> {response.status_code}: {problem}"
            if line not in self._seen:  # one line per kind of problem, with its first request
                self._seen.add(line)
                curl = case.as_curl_command(headers=headers)
                self.problems.append(f"{line}\n    {curl}\n    {response.text[:300]!r}")

    def _judge(
        self, operation: Operation, case: FuzzCase, response: Response, headers: dict[str, str]
    ) -> list[str]:
        status = response.status_code
        if status >= 500:
            return ["a server error"]
        problems = []
        if status >= 400 and case.method.upper() != "HEAD":
            problems += _error_body_problems(response)
        if self.valid:
            if 200 <= status < 300:
                problems += _conformance_problems(case, response, headers)
        elif _key(operation) not in self.public:
            if status < 400:
                problems.append("a bad token was accepted")
            if status == 401 and _header(response, "www-authenticate") != 'Basic realm="shipyard"':
                problems.append("a 401 without the Basic challenge")
        return problems

    def succeeded(self) -> set[str]:
        """Operations answered with a 2xx at least once (the cases got past validation)."""
        return {key for key, counts in self.statuses.items() if any(200 <= s < 300 for s in counts)}

    def summary(self) -> str:
        """How each operation was answered."""
        return "\n".join(f"{key}: {dict(sorted(counts.items()))}" for key, counts in self.statuses.items())

    def report(self) -> str:
        """The problems, for an assertion message."""
        return "\n".join(self.problems) or "none"


def _key(operation: Operation) -> str:
    return f"{operation.method.upper()} {operation.path}"


def _negatable(operation: Operation) -> bool:
    """Whether the operation takes anything a negative case could get wrong."""
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


def _header(response: Response, name: str) -> str | None:
    """The first value of header ``name``."""
    for key, values in response.headers.items():
        if key.lower() == name and values:
            return values[0]
    return None


def _error_body_problems(response: Response) -> list[str]:
    if not (_header(response, "content-type") or "").startswith("application/json"):
        return []  # git's smart HTTP answers some errors in git's own terms
    try:
        body = response.json()
    except ValueError:
        return ["an error body that is not JSON"]
    if not (isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]):
        return [f"an error body without an 'error' message: {body!r:.100}"]
    return []


def _conformance_problems(case: FuzzCase, response: Response, headers: dict[str, str]) -> list[str]:
    try:
        case.validate_response(response, checks=CONFORMANCE, headers=headers)
    except FailureGroup as group:
        return sorted({f"not as documented: {f.title}" for f in group.exceptions})
    except AssertionError as err:
        return [f"not as documented: {str(err).splitlines()[0]}"]
    return []


def raw_exchange(base_url: str, data: bytes, *, hang_up: bool = False, timeout: float = 10) -> bytes:
    """Send ``data`` as is on a new connection to ``base_url``; what came back.

    For what an HTTP client would refuse to send: a malformed request, a lying
    ``Content-Length``, a body cut short (``hang_up``: close right after sending). The
    request should say ``Connection: close``: the answer is read until the server closes.
    """
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        if hang_up:
            return b""
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
        return bytes(received)


def raw_status(answer: bytes) -> int:
    """The status code of a raw HTTP/1.1 answer."""
    line = answer.split(b"\r\n", 1)[0].split()
    assert len(line) >= 2 and line[0].startswith(b"HTTP/"), f"not an HTTP answer: {answer[:100]!r}"
    return int(line[1])
