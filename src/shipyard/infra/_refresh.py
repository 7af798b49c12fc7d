"""Reading what exists now for each recorded resource (``refresh``).

Besides ``read``, this handles the entries an interrupted apply leaves:

* a *pending* entry (``tainted`` with an empty id) is written just before ``create`` is
  called on an :attr:`~shipyard.infra.provider.ResourceType.external` type, so that a
  process killed during the call leaves a trace. Whether the thing was made is
  unknown; a resource type that can look for it by its properties (it overrides
  :meth:`~shipyard.infra.provider.ResourceType.find`) lets the engine adopt it instead
  of creating it twice;
* a *deposed* entry (``ADDRESS~deposed``) is the old object of a create-before-destroy
  replacement whose delete did not happen yet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from shipyard.errors import ProviderError
from shipyard.infra._state_model import ResourceState
from shipyard.infra.provider import Context, ResourceType

__all__ = ["Refreshed", "is_pending", "provider_failure", "refresh_entry"]


@dataclass(slots=True)
class Refreshed:
    """What refreshing one entry found: ``entry`` updated from the real world, or None
    when nothing exists. ``adopted`` marks a pending create found after all."""

    entry: ResourceState | None
    notes: tuple[str, ...] = ()
    adopted: bool = False


def is_pending(entry: ResourceState) -> bool:
    """Whether ``entry`` records a create that was started and never finished."""
    return entry.tainted and not entry.id


def provider_failure(err: Exception) -> str:
    """How a provider's exception reads in a message."""
    if isinstance(err, ProviderError):
        return str(err)
    return f"provider bug: {type(err).__name__}: {err}"


def refresh_entry(rtype: ResourceType, ctx: Context, entry: ResourceState) -> Refreshed:
    """Read ``entry``'s real thing; raises the provider's exception on failure."""
    adopted = False
    if is_pending(entry):
        if not rtype.can_find():
            return Refreshed(None, (
                "a create was interrupted before its id was recorded: if it made"
                f" anything, that is not managed by this stack ({rtype.name} cannot look for it)",
            ))
        found = rtype.find(ctx, entry.properties)
        if found is None:
            return Refreshed(None)
        entry = replace(entry, id=found.id, attributes=dict(found.attributes), tainted=False)
        adopted = True
    observed = rtype.read(ctx, entry.id, entry.properties, entry.attributes)
    if observed is None:
        return Refreshed(None, adopted=adopted)
    properties = entry.properties
    if observed.properties and any(
        k not in properties or properties[k] != v for k, v in observed.properties.items()
    ):
        properties = {**properties, **observed.properties}
    attributes = entry.attributes
    if observed.attributes and any(
        k not in attributes or attributes[k] != v for k, v in observed.attributes.items()
    ):
        attributes = {**attributes, **observed.attributes}
    if properties is not entry.properties or attributes is not entry.attributes:
        entry = replace(entry, properties=properties, attributes=attributes)
    return Refreshed(entry, tuple(observed.notes), adopted)
