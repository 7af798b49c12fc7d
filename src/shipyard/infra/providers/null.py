"""The ``null`` provider: a resource with no outside world (Terraform's ``terraform_data``).

A ``null`` resource holds a value in the state and nothing else. It is the glue of a
stack: ``input`` is stored and mirrored as the ``output`` attribute (so a value can be
passed through a resource that others depend on), and a change of ``triggers_replace``
replaces the resource, which in turn replaces whatever has ``depends_on`` it or refers
to its ``id``. Every operation is a few dictionary copies: stacks create thousands.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from shipyard.infra.provider import (
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ProviderError,
    StateOnlyType,
)

__all__ = ["NullData", "NullProvider"]


def _uuid4() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())`` but twice as fast.

    Half the cost of creating a null resource was building a ``uuid.UUID`` only to
    print it.
    """
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


class NullData(StateOnlyType):
    """``null``: a value kept in the state; a new id whenever ``triggers_replace`` changes."""

    name = "null"
    description = (
        "A value kept in the state (Terraform's terraform_data): `input` is mirrored as "
        "the `output` attribute; a change of `triggers_replace` replaces the resource."
    )
    properties = {
        "input": Property(
            type="any",
            description="Any value; a change updates the resource in place and `output` follows it.",
        ),
        "triggers_replace": Property(
            type="any",
            replace=True,
            description="Any value; a change replaces the resource (a new id).",
        ),
    }
    attributes = {
        "output": Attribute(type="any", description="The value of `input` at the last apply."),
    }

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        return Created(_uuid4(), {"output": properties.get("input")})

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        return {"output": properties.get("input")}

    def import_(self, ctx: Context, id: str) -> Observed:
        raise ProviderError(
            "a null resource exists only in the state, so there is nothing to import: "
            "declare it and apply (creating it changes nothing outside the state), or "
            "use `moved` to rename one the state already has"
        )


class NullProvider(Provider):
    """Resources that live only in the state."""

    name = "null"
    description = "Resources that exist only in the state: values, triggers, ordering."
    resource_types = (NullData,)
