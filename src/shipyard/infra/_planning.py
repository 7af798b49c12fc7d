"""The planner's inputs: variables, provider configurations, contexts and refresh.

:class:`PlannerBase` holds what one planning pass works from (the stack, the state and
its entries after ``moved``, what refreshing found) and the problems found so far;
:class:`~shipyard.infra._plan.Planner` adds the walk over the stack.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import InfraError, LocatedError, Location
from shipyard.infra._address import parse_address
from shipyard.infra._changes import DEPOSED, Change, Fix
from shipyard.infra._eval import (
    UNKNOWN,
    TreeError,
    contains_unknown,
    evaluate_expression,
    evaluate_tree,
    expose,
)
from shipyard.infra._model import Reference, Stack
from shipyard.infra._refresh import Refreshed, is_pending, provider_failure, refresh_entry
from shipyard.infra._registry import Registry
from shipyard.infra._scope import Instance, Scope
from shipyard.infra._state_model import ResourceState, State
from shipyard.infra._types import TypeSpec, parse_type
from shipyard.infra._workers import run_all
from shipyard.infra.provider import REQUIRED, Context, Property, ResourceType
from shipyard.workflow.expressions import EvalContext, EvaluationError, is_truthy

__all__ = [
    "LogSink",
    "PlannerBase",
    "Walk",
    "decl_refs",
    "declares_providers",
    "default_of",
    "error_order",
    "is_unknown",
    "locate",
    "path_of",
    "spec",
]


class LogSink:
    """Where providers' ``ctx.log`` lines go: set ``target`` to receive them."""

    def __init__(self) -> None:
        self.target: Callable[[str, str], None] | None = None

    def emit(self, address: str, message: str) -> None:
        target = self.target
        if target is not None:
            target(address, message)

    def bound(self, address: str) -> Callable[[str], None]:
        return lambda message: self.emit(address, message)


def spec(text: str, cache: dict[str, TypeSpec] = {}) -> TypeSpec:  # noqa: B006 - a cache
    found = cache.get(text)
    if found is None:
        found = cache[text] = parse_type(text)
    return found


def default_of(prop: Property) -> Any:
    value = prop.default
    if value is REQUIRED:
        return None
    if type(value) in (dict, list):
        return copy.deepcopy(value)
    return value


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN


def locate(locations: Mapping[tuple[str | int, ...], Location], path: tuple[str | int, ...],
            fallback: Location) -> Location:
    while path:
        found = locations.get(path)
        if found is not None:
            return found
        path = path[:-1]
    return locations.get((), fallback)


def path_of(text: str) -> tuple[str | int, ...]:
    """``ports[1].host`` -> ``("ports", 1, "host")`` (for locating validate's problems)."""
    out: list[str | int] = []
    for part in text.replace("]", "").replace("[", ".").split("."):
        if part:
            out.append(int(part) if part.isdigit() else part.strip('"'))
    return tuple(out)


@dataclass(slots=True)
class Walk:
    """What planning produced, kept for apply: the root scope and every instance."""

    root: Scope
    instances: dict[str, Instance] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)


class PlannerBase:
    """What a planning pass works from (see the module docstring)."""

    def __init__(
        self,
        stack: Stack,
        registry: Registry,
        variables: dict[str, Any],
        state: State,
        *,
        data_dir: Path,
        sink: LogSink,
        parallelism: int = 10,
        refresh: bool = True,
        refreshed: dict[str, Refreshed] | None = None,
    ) -> None:
        self.stack = stack
        self.registry = registry
        self.variables = variables
        self.state = state
        self.data_dir = data_dir
        self.sink = sink
        self.parallelism = parallelism
        self.refresh = refresh
        self.refreshed: dict[str, Refreshed] = dict(refreshed or {})
        self.given_refreshed = refreshed is not None
        self.errors: list[LocatedError] = []
        self.problems: list[str] = []  # errors without a location (providers, refresh)
        self.warnings: list[str] = []
        self.fixes: list[Fix] = []
        self.entries: dict[str, ResourceState] = {}
        self.origin: dict[str, str] = {}
        self._orders: dict[int, list[tuple[str, str]]] = {}
        self._static: dict[int, bool] = {}
        self._dirs: dict[int, str] = {}
        self._data_dirs: dict[str, Path] = {}
        self._entry_dirs: dict[str, Path] = {}
        self._module_providers = declares_providers(stack)
        self._root_configs: dict[str, dict[str, Any]] = {}
        self.walk: Walk | None = None
        # How to delete each object a plan deletes: its type (the recorded one, which a
        # replacement may change) and a provider context.
        self.delete_contexts: dict[str, tuple[ResourceType, Context]] = {}
    def _raise_errors(self) -> None:
        if self.errors:
            from shipyard.errors import ValidationError

            raise ValidationError(sorted(self.errors, key=error_order))
        if self.problems:
            raise InfraError("\n".join(self.problems))

    # ------------------------------------------------------------------ variables

    def _root_variables(self) -> dict[str, Any]:
        stack = self.stack
        values: dict[str, Any] = {}
        for name in self.variables:
            if name not in stack.variables:
                declared = ", ".join(sorted(stack.variables)) or "none"
                self.problems.append(f"the stack has no variable '{name}' (declared: {declared})")
        for name, decl in stack.variables.items():
            if name in self.variables:
                value = self.variables[name]
            elif decl.default is REQUIRED:
                self.errors.append(LocatedError(
                    f"variable '{name}' is required: pass -var {name}=VALUE or set it in a --var-file",
                    decl.location,
                ))
                continue
            else:
                value = copy.deepcopy(decl.default)
            problem = spec(decl.type).check(value)
            if problem is not None:
                self.errors.append(LocatedError(f"variable '{name}': {problem}", decl.location))
                continue
            values[name] = value
        self._validate_variables(stack, values, "")
        return values

    def _root_sensitive(self) -> frozenset[str]:
        return frozenset(n for n, d in self.stack.variables.items() if d.sensitive)

    def _validate_variables(self, stack: Stack, values: dict[str, Any], where: str) -> None:
        ctx = EvalContext({"var": expose(values)})
        for name, decl in stack.variables.items():
            if name not in values or contains_unknown(values[name]):
                continue
            for rule in decl.validations:
                try:
                    ok = evaluate_expression(rule.condition, ctx)
                except EvaluationError as err:
                    self.errors.append(LocatedError(f"variable '{name}': {err.message}", rule.location))
                    continue
                if ok is not UNKNOWN and not is_truthy(ok):
                    self.errors.append(LocatedError(f"variable '{name}'{where}: {rule.message}", rule.location))

    # ------------------------------------------------------------------ providers

    def _configure(self, scope: Scope) -> None:
        """Evaluate the provider configurations the scope's folder declares."""
        ctx = EvalContext({"var": expose(scope.var)})
        for name, tree in scope.stack.providers.items():
            location = scope.stack.provider_locations.get(name, Location(str(scope.stack.dir), 1, 1))
            try:
                provider = self.registry.provider(name)
                values = evaluate_tree(tree, ctx)
            except InfraError as err:
                self.errors.append(LocatedError(str(err), location))
                continue
            except TreeError as err:
                self.errors.append(LocatedError(f"provider '{name}': {err.error.message}", location))
                continue
            if contains_unknown(values):
                self.errors.append(LocatedError(
                    f"provider '{name}': the configuration depends on values known only after apply",
                    location,
                ))
                continue
            scope.providers[name] = self._complete_config(name, provider.config, values, location)

    def _complete_config(self, name: str, schema: Mapping[str, Property], values: dict[str, Any],
                         location: Location | None) -> dict[str, Any]:
        config = dict(values)
        for key, prop in schema.items():
            if config.get(key) is None:
                if prop.required:
                    message = f"provider '{name}' needs '{key}' in its configuration (providers: {name}: {key}: ...)"
                    if location is not None:
                        self.errors.append(LocatedError(message, location))
                    else:
                        self.problems.append(message)
                config.setdefault(key, default_of(prop))
                if config[key] is None:
                    config[key] = default_of(prop)
            elif (problem := spec(prop.type).check(config[key])) is not None:
                message = f"provider '{name}': config '{key}': {problem}"
                self.errors.append(LocatedError(message, location)) if location else self.problems.append(message)
        return config

    def config_for(self, scope: Scope | None, provider: str) -> dict[str, Any]:
        """The configuration of ``provider`` for resources of ``scope`` (the nearest
        folder that configures it, else the provider's defaults)."""
        while scope is not None:
            found = scope.providers.get(provider)
            if found is not None:
                return found
            scope = scope.parent
        found = self._root_configs.get(provider)
        if found is None:
            schema = self.registry.provider(provider).config
            found = self._root_configs[provider] = self._complete_config(provider, schema, {}, None)
        return found

    def context(self, provider: str, config: Mapping[str, Any], stack_dir: Path, address: str) -> Context:
        data_dir = self._data_dirs.get(provider)
        if data_dir is None:
            data_dir = self._data_dirs[provider] = self.data_dir / provider
            data_dir.mkdir(parents=True, exist_ok=True)
        return Context(config, stack_dir, data_dir, self.sink.bound(address))

    def entry_dir(self, entry: ResourceState) -> Path:
        """The folder of the stack (or module) that declared a recorded entry."""
        found = self._entry_dirs.get(entry.dir)
        if found is None:
            found = self._entry_dirs[entry.dir] = self.stack.dir / entry.dir
        return found

    # ------------------------------------------------------------------ refresh

    def _entry_scope_config(self, root: Scope, address: str, provider: str) -> dict[str, Any] | None:
        """The provider configuration for a state entry before the walk, or None when it
        is only known once the walk reaches the module that configures it."""
        if not self._module_providers:
            return self.config_for(root, provider)
        try:
            parsed = parse_address(address.removesuffix(DEPOSED))
        except ValueError:
            return self.config_for(root, provider)
        stack = self.stack
        chain = [stack]
        for name, _ in parsed.module:
            module = stack.modules.get(name)
            if module is None:
                break
            stack = module.stack
            chain.append(stack)
        for inner in reversed(chain[1:]):
            if provider in inner.providers:
                return None
        return self.config_for(root, provider)

    def _prefetch(self, root: Scope) -> None:
        jobs: list[tuple[str, ResourceType, Context, ResourceState]] = []
        for address, entry in self.entries.items():
            provider = entry.type.split("_", 1)[0]
            try:
                rtype = self.registry.resource_type(entry.type)
                config = self._entry_scope_config(root, address, provider)
            except InfraError as err:
                self.problems.append(f"{address}: {err}")
                continue
            if config is None:
                continue
            ctx = self.context(provider, config, self.entry_dir(entry), address)
            jobs.append((address, rtype, ctx, entry))
        self._raise_errors()
        results = run_all(lambda job: refresh_entry(job[1], job[2], job[3]), jobs, self.parallelism)
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, Exception):
                self.problems.append(f"{job[0]}: cannot read it: {provider_failure(result)}")
            else:
                self.refreshed[job[0]] = result
        self._raise_errors()

    def refreshed_entry(self, address: str, rtype: ResourceType, ctx: Context) -> Refreshed | None:
        """The refreshed entry at ``address`` (reading it now if it was not prefetched);
        None when the state has no entry there."""
        entry = self.entries.get(address)
        if entry is None:
            return None
        found = self.refreshed.get(address)
        if found is not None:
            return found
        if not self.refresh or self.given_refreshed:
            # Not refreshing (or re-planning a saved plan: what it did not read stays
            # as recorded).
            if is_pending(entry):
                return Refreshed(None)
            return Refreshed(entry)
        try:
            found = refresh_entry(rtype, ctx, entry)
        except Exception as err:
            self.problems.append(f"{address}: cannot read it: {provider_failure(err)}")
            return Refreshed(entry)
        self.refreshed[address] = found
        return found


def declares_providers(stack: Stack) -> bool:
    """Whether a module folder (not the root) of ``stack`` configures a provider."""
    return any(m.stack.providers or declares_providers(m.stack) for m in stack.modules.values())


def decl_refs(references: tuple[Reference, ...],
               depends_on: tuple[tuple[str, Location], ...]) -> list[tuple[str, str]]:
    out: dict[tuple[str, str], None] = {}
    for ref in references:
        if ref.kind in ("resource", "module"):
            out[(ref.kind, ref.name)] = None
    for name, _ in depends_on:
        if name.startswith("modules."):
            out[("module", name[len("modules."):])] = None
        else:
            out[("resource", name)] = None
    return list(out)


def error_order(err: LocatedError) -> tuple[str, int, int]:
    loc = err.location
    return (loc.file, loc.line, loc.col) if loc is not None else ("", 0, 0)
