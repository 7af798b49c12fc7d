"""The providers a stack can use, found through entry points and imported on first use.

``Registry.default()`` finds providers without importing them: ``resource_type
("postgres_role")`` imports the ``postgres`` provider only (the part of the type name
before the first ``_``), so a stack of ``null`` resources never imports psycopg or
docker. The providers Shipyard ships are known by name (:data:`BUILT_IN`, the same
entry points ``pyproject.toml`` declares), so a stack that uses only those does not pay
for reading every installed package's entry points; another name, or the list of every
provider, reads the ``shipyard.infra.providers`` entry points (third-party providers).
``Registry(providers=[...])`` uses exactly the providers given (tests, embedding).

A provider is checked when it is loaded: every resource type must be named after it
(``postgres`` or ``postgres_...``) and every property type must parse, so the loader
and the engine can rely on both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from typing import Any, Final, Protocol

from shipyard.errors import InfraError
from shipyard.infra._types import parse_type
from shipyard.infra.provider import Attribute, Property, Provider, ResourceType
from shipyard.workflow._schema import did_you_mean

__all__ = ["BUILT_IN", "ENTRY_POINT_GROUP", "Registry"]

ENTRY_POINT_GROUP: Final = "shipyard.infra.providers"

#: The providers Shipyard ships, as ``pyproject.toml`` declares their entry points.
BUILT_IN: Final = {
    "null": "shipyard.infra.providers.null:NullProvider",
    "random": "shipyard.infra.providers.random:RandomProvider",
    "file": "shipyard.infra.providers.file:FileProvider",
    "template": "shipyard.infra.providers.template:TemplateProvider",
    "command": "shipyard.infra.providers.command:CommandProvider",
    "process": "shipyard.infra.providers.process:ProcessProvider",
    "loadbalancer": "shipyard.infra.providers.loadbalancer:LoadBalancerProvider",
    "postgres": "shipyard.infra.providers.postgres:PostgresProvider",
    "docker": "shipyard.infra.providers.docker:DockerProvider",
}


class _Source(Protocol):
    """Where a provider comes from: an entry point, or a built-in provider's path."""

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class _BuiltIn:
    value: str  # "module:Class", as an entry point's value

    def load(self) -> Any:
        module, _, name = self.value.partition(":")
        return getattr(import_module(module), name)


@lru_cache(maxsize=1)
def _discover() -> dict[str, _Source]:
    """The installed providers by name (reading metadata only, importing nothing); a
    built-in name keeps its built-in provider."""
    from importlib.metadata import entry_points  # only registries that discover pay for it

    found: dict[str, _Source] = {name: _BuiltIn(value) for name, value in BUILT_IN.items()}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry)
    return found


def _provider_of(type_name: str) -> str:
    return type_name.split("_", 1)[0]


class Registry:
    """Provider and resource type lookup; thread-safe, each provider imported once."""

    def __init__(self, providers: Iterable[type[Provider] | Provider] | None = None) -> None:
        """Use exactly ``providers`` (classes or instances); None discovers entry points."""
        self._lock = threading.RLock()
        self._providers: dict[str, Provider] = {}
        self._types: dict[str, ResourceType] = {}
        self._broken: dict[str, str] = {}
        self._discovers = providers is None
        if providers is not None:
            for provider in providers:
                self._add(provider if isinstance(provider, Provider) else provider())

    @classmethod
    def default(cls) -> Registry:
        """The installed providers (entry point group ``shipyard.infra.providers``)."""
        return cls()

    def _source(self, name: str) -> _Source | None:
        """Where the provider ``name`` comes from (None: no such provider)."""
        if not self._discovers:
            return None
        found = BUILT_IN.get(name)
        if found is not None:
            return _BuiltIn(found)
        return _discover().get(name)

    def provider_names(self) -> list[str]:
        """Every provider's name, sorted, without importing any."""
        return sorted({*self._providers, *(_discover() if self._discovers else ())})

    def provider(self, name: str) -> Provider:
        """The provider called ``name``, imported on first use; raises InfraError."""
        found = self._providers.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._providers.get(name)
            if found is not None:
                return found
            broken = self._broken.get(name)
            if broken is not None:
                raise InfraError(broken)
            entry = self._source(name)
            if entry is None:
                names = self.provider_names()
                raise InfraError(
                    f"unknown provider '{name}'{did_you_mean(name, names)}; known providers: "
                    + (", ".join(names) or "none")
                )
            try:
                loaded = entry.load()
                if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
                    raise TypeError(f"{entry.value} is not a Provider subclass")
                instance = loaded()
                if instance.name != name:
                    raise TypeError(f"{entry.value} is named {instance.name!r}, not {name!r}")
                return self._add(instance)
            except Exception as err:
                message = f"provider '{name}' cannot be loaded ({entry.value}): {type(err).__name__}: {err}"
                self._broken[name] = message
                raise InfraError(message) from err

    def resource_type(self, type_name: str) -> ResourceType:
        """The resource type called ``type_name`` (one instance per registry); raises
        InfraError naming the closest known types when there is none."""
        found = self._types.get(type_name)
        if found is not None:
            return found
        provider_name = _provider_of(type_name)
        if provider_name in self._providers or self._source(provider_name) is not None:
            self.provider(provider_name)
            found = self._types.get(type_name)
            if found is not None:
                return found
        names = self.type_names()
        raise InfraError(
            f"unknown resource type '{type_name}'{did_you_mean(type_name, names)}; known types: "
            + (", ".join(names) or "none")
        )

    def type_names(self) -> list[str]:
        """Every resource type's name, sorted. Imports every provider: for messages only.

        Providers that cannot be imported are left out (their error shows when a stack
        uses one of their types).
        """
        for name in self.provider_names():
            try:
                self.provider(name)
            except InfraError:
                continue
        return sorted(self._types)

    def _add(self, provider: Provider) -> Provider:
        name = provider.name
        with self._lock:
            if name in self._providers:
                raise InfraError(f"provider '{name}' is registered twice")
            types: dict[str, ResourceType] = {}
            for cls in provider.resource_types:
                type_name = cls.name
                if type_name != name and not type_name.startswith(name + "_"):
                    raise InfraError(
                        f"provider '{name}': resource type '{type_name}' must be named"
                        f" '{name}' or '{name}_...'"
                    )
                if type_name in types or type_name in self._types:
                    raise InfraError(
                        f"provider '{name}': resource type '{type_name}' is declared twice"
                    )
                declared: list[tuple[str, Property | Attribute]] = [
                    *cls.properties.items(),
                    *cls.attributes.items(),
                ]
                for prop_name, prop in declared:
                    try:
                        parse_type(prop.type)
                    except ValueError as err:
                        raise InfraError(
                            f"provider '{name}': '{type_name}.{prop_name}' has a bad type: {err}"
                        ) from None
                types[type_name] = cls()
            for prop_name, prop in provider.config.items():
                try:
                    parse_type(prop.type)
                except ValueError as err:
                    raise InfraError(
                        f"provider '{name}': config '{prop_name}' has a bad type: {err}"
                    ) from None
            self._types.update(types)
            self._providers[name] = provider
            return provider
