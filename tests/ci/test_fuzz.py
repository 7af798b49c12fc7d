"""Generated requests, valid and invalid by ci's own OpenAPI document, never get a 500."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.ci.conftest import CiServer, unique


def fuzz(strategy: Any, headers: dict[str, str], failures: list[str]) -> None:
    """Send cases of one operation; record any answered with a 500."""

    @settings(max_examples=15, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        case = data.draw(strategy)
        if case.query:  # long polls and streams are covered by their own tests
            case.query = {**case.query, **{
                k: v for k, v in (("follow", "false"), ("wait", 0)) if k in case.query}}
        response = case.call(headers=headers, timeout=30)
        if response.status_code == 500:  # 503 is an honest "git is not there"
            failures.append(f"{case.method} {case.formatted_path}: {response.status_code}"
                            f" {response.text[:200]}")

    check()


def test_no_generated_request_gets_a_server_error(ci: CiServer) -> None:
    label = unique("fuzz")
    ci.create(f"""
    on: push
    jobs:
      a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
    """)
    ci.runner(label).must_claim()  # a running job for the job endpoints to find
    schema = schemathesis.openapi.from_dict(ci.get("/openapi.json").json())
    schema.config.update(base_url=ci.url)
    # Both what the schema allows and what it does not (wrong types, missing fields).
    schema.config.generation.update(modes=list(schemathesis.GenerationMode))
    headers = {"Authorization": f"Bearer {ci.admin}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/runners/claim":  # long-polls: covered by its own tests
            continue
        fuzz(operation.as_strategy(), headers, failures)
    assert failures == []
