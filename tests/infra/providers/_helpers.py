"""What the provider tests share: property sets as the engine passes them, unique names."""

from __future__ import annotations

import uuid
from typing import Any

from shipyard.infra.provider import REQUIRED, ResourceType


def defaults(rtype: ResourceType, **values: Any) -> dict[str, Any]:
    """Every property, as the engine passes them: defaults filled in."""
    props = {k: p.default for k, p in rtype.properties.items() if p.default is not REQUIRED}
    props.update(values)
    return props


def unique(prefix: str, *, sep: str = "-", start: str = "shipyard-t") -> str:
    """A name no other test (or parallel worker) uses."""
    return f"{start}{sep}{prefix}{sep}{uuid.uuid4().hex[:10]}"
