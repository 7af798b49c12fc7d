"""The ``random`` provider: random values generated once and kept in the state.

As in Terraform's random provider, a value is drawn when the resource is created and
stays the same on every later apply; every property forces a new value when it changes,
and ``keepers`` is a map whose only purpose is that: put there whatever should cause a
new value (an image digest, a server name). Values come from :mod:`secrets`, the
operating system's cryptographic generator.

There is nothing outside the state to drift, so ``read`` returns what the state holds.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, TypeGuard

from shipyard.infra.provider import (
    REQUIRED,
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ProviderError,
    StateOnlyType,
)

__all__ = [
    "RandomId",
    "RandomInteger",
    "RandomPassword",
    "RandomProvider",
    "RandomString",
]

_KEEPERS = Property(
    type="map(any)",
    replace=True,
    description="Arbitrary values; a change of any of them draws a new value.",
)

# The character classes, in Terraform's order and with its default special characters.
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_NUMERIC = "0123456789"
_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"
_CLASSES = ("upper", "lower", "numeric", "special")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _RandomType(StateOnlyType):
    """What every random type shares: no update, no outside world, no delete to do."""

    updatable = False


class RandomId(_RandomType):
    """``random_id``: random bytes, in hex, base64 and decimal."""

    name = "random_id"
    description = (
        "Random bytes (e.g. a unique suffix for a name), as hex, base64 and decimal. "
        "Import with the base64url form (`PREFIX,B64URL` with a prefix) or `hex:HEX`."
    )
    properties = {
        "byte_length": Property(
            type="integer",
            default=REQUIRED,
            replace=True,
            description="How many random bytes (at least 1).",
        ),
        "prefix": Property(
            type="string",
            default="",
            replace=True,
            description="Text put before every encoding (not encoded itself).",
        ),
        "keepers": _KEEPERS,
    }
    attributes = {
        "hex": Attribute(description="The bytes in lower-case hex, after the prefix."),
        "b64_url": Attribute(description="The bytes in unpadded base64url, after the prefix."),
        "b64_std": Attribute(description="The bytes in padded standard base64, after the prefix."),
        "dec": Attribute(description="The bytes as a big-endian unsigned integer in decimal."),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        length = properties.get("byte_length")
        if _is_int(length) and length < 1:
            return [("byte_length", "must be at least 1")]
        return []

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        data = secrets.token_bytes(int(properties["byte_length"]))
        return _id_created(data, properties.get("prefix") or "")

    def import_(self, ctx: Context, id: str) -> Observed:
        prefix, _, encoded = id.rpartition(",")
        try:
            if encoded.startswith("hex:"):
                data = bytes.fromhex(encoded[4:])
            else:
                padding = "=" * (-len(encoded) % 4)
                data = base64.urlsafe_b64decode(encoded + padding)
                if _b64_url(data) != encoded:
                    raise ValueError("not in canonical form")
        except (ValueError, binascii.Error):
            raise ProviderError(
                f"cannot import random_id {id!r}: expected the unpadded base64url of the "
                "bytes (as in the b64_url attribute), `hex:` and their hex, optionally "
                "after `PREFIX,`"
            ) from None
        if not data:
            raise ProviderError(f"cannot import random_id {id!r}: it holds no bytes")
        created = _id_created(data, prefix)
        return Observed({"byte_length": len(data), "prefix": prefix}, created.attributes)


def _b64_url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _id_created(data: bytes, prefix: str) -> Created:
    # Terraform's id is the unprefixed base64url, which is also what import takes.
    b64_url = _b64_url(data)
    return Created(
        b64_url,
        {
            "hex": prefix + data.hex(),
            "b64_url": prefix + b64_url,
            "b64_std": prefix + base64.b64encode(data).decode("ascii"),
            "dec": prefix + str(int.from_bytes(data, "big")),
        },
    )


class _RandomText(_RandomType):
    """``random_string`` and ``random_password``: text from chosen character classes."""

    properties = {
        "length": Property(
            type="integer",
            default=REQUIRED,
            replace=True,
            description="The number of characters (at least 1, and at least the sum of the min_*).",
        ),
        "upper": Property(type="boolean", default=True, replace=True, description="Use A-Z."),
        "lower": Property(type="boolean", default=True, replace=True, description="Use a-z."),
        "numeric": Property(type="boolean", default=True, replace=True, description="Use 0-9."),
        "special": Property(
            type="boolean",
            default=True,
            replace=True,
            description=f"Use special characters ({_SPECIAL} unless override_special).",
        ),
        "min_upper": Property(
            type="integer", default=0, replace=True, description="At least this many of A-Z."
        ),
        "min_lower": Property(
            type="integer", default=0, replace=True, description="At least this many of a-z."
        ),
        "min_numeric": Property(
            type="integer", default=0, replace=True, description="At least this many of 0-9."
        ),
        "min_special": Property(
            type="integer",
            default=0,
            replace=True,
            description="At least this many special characters.",
        ),
        "override_special": Property(
            type="string",
            replace=True,
            description="The special characters to use instead of the default set.",
        ),
        "keepers": _KEEPERS,
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        length = properties.get("length")
        if _is_int(length) and length < 1:
            problems.append(("length", "must be at least 1"))
        override = properties.get("override_special")
        chars = {"upper": _UPPER, "lower": _LOWER, "numeric": _NUMERIC}
        chars["special"] = _SPECIAL if override is None else str(override)
        total = 0
        for cls in _CLASSES:
            key = f"min_{cls}"
            value = properties.get(key)
            if not _is_int(value) or value == 0:
                continue
            if value < 0:
                problems.append((key, "must not be negative"))
            elif properties.get(cls) is False:
                problems.append((key, f"asks for {cls} characters, but {cls} is false"))
            elif not chars[cls]:
                problems.append((key, "asks for special characters, but override_special is empty"))
            else:
                total += value
        # Unknown minimums are at least 0, so the known ones already bound the length.
        if _is_int(length) and length >= 1 and total > length:
            problems.append(("length", f"must be at least the sum of the min_* ({total})"))
        enabled = [properties.get(cls) for cls in _CLASSES if chars[cls]]
        if all(flag is False for flag in enabled):
            problems.append(
                ("upper", "no characters are allowed: set one of upper, lower, numeric, special")
            )
        return problems

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        result = _generate(properties)
        return Created(self._id(result), {"result": result})

    @abstractmethod
    def _id(self, result: str) -> str:
        """The resource id for a newly drawn ``result``."""


def _generate(properties: Mapping[str, Any]) -> str:
    """Terraform's algorithm: the minimums of each class, the rest from all enabled, shuffled."""
    override = properties.get("override_special")
    special = _SPECIAL if override is None else override
    sets = {"upper": _UPPER, "lower": _LOWER, "numeric": _NUMERIC, "special": special}
    length = int(properties["length"])
    chosen: list[str] = []
    pool = ""
    for cls in _CLASSES:
        chars = sets[cls]
        enabled = properties.get(cls, True)
        if enabled:
            pool += chars
        minimum = int(properties.get(f"min_{cls}") or 0)
        if minimum and not chars:
            raise ProviderError(f"min_{cls} asks for {minimum} characters from an empty set")
        chosen.extend(secrets.choice(chars) for _ in range(minimum))
    rest = length - len(chosen)
    if rest < 0:
        raise ProviderError(f"length {length} is less than the sum of the minimums ({len(chosen)})")
    if rest and not pool:
        raise ProviderError("no characters allowed: enable at least one character class")
    chosen.extend(secrets.choice(pool) for _ in range(rest))
    # With the system's generator too, so the minimums are not at the front.
    secrets.SystemRandom().shuffle(chosen)
    return "".join(chosen)


class RandomString(_RandomText):
    """``random_string``: random text that is not a secret (a suffix, a name)."""

    name = "random_string"
    description = (
        "Random text that is not a secret (shown in plans). The id is the text itself; "
        "import with the text."
    )
    attributes = {"result": Attribute(description="The random text.")}

    def _id(self, result: str) -> str:
        return result

    def import_(self, ctx: Context, id: str) -> Observed:
        # The id is the text itself. Only its length can be known; the character
        # classes are left out so that the stack's settings are taken as they are.
        if not id:
            raise ProviderError("cannot import an empty random_string")
        return Observed({"length": len(id)}, {"result": id})


class RandomPassword(_RandomText):
    """``random_password``: like random_string, but the result is sensitive."""

    name = "random_password"
    description = (
        "Random text kept secret: `result` is sensitive (masked in plans, encrypted in "
        "the state). It cannot be imported (the id would reveal it)."
    )
    attributes = {
        "result": Attribute(description="The password.", sensitive=True),
    }

    def _id(self, result: str) -> str:
        # The id is stored in plain text, so it must not reveal the password.
        return secrets.token_hex(8)

    def import_(self, ctx: Context, id: str) -> Observed:
        # Importing takes the value as the id, and ids are kept and shown in plain text.
        raise ProviderError(
            "a random_password cannot be imported: its id would be the password, and ids "
            "are stored and shown in plain text; pass an existing password through a "
            "sensitive variable instead"
        )


class RandomInteger(_RandomType):
    """``random_integer``: a random whole number in [min, max]."""

    name = "random_integer"
    description = (
        "A random integer between min and max, both included (a port, a priority). "
        "Import with `RESULT,MIN,MAX`."
    )
    properties = {
        "min": Property(
            type="integer", default=REQUIRED, replace=True, description="The smallest value."
        ),
        "max": Property(
            type="integer", default=REQUIRED, replace=True, description="The largest value."
        ),
        "keepers": _KEEPERS,
    }
    attributes = {"result": Attribute(type="integer", description="The random integer.")}

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        low, high = properties.get("min"), properties.get("max")
        if _is_int(low) and _is_int(high) and high < low:
            return [("max", f"must be at least min ({low})")]
        return []

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        low, high = int(properties["min"]), int(properties["max"])
        if high < low:
            raise ProviderError(f"max ({high}) is less than min ({low})")
        result = low + secrets.randbelow(high - low + 1)
        return Created(str(result), {"result": result})

    def import_(self, ctx: Context, id: str) -> Observed:
        try:
            result, low, high = (int(part) for part in id.split(","))
        except ValueError:
            raise ProviderError(
                f"cannot import random_integer {id!r}: expected RESULT,MIN,MAX (e.g. 15390,1,50000)"
            ) from None
        if not low <= result <= high:
            raise ProviderError(
                f"cannot import random_integer {id!r}: {result} is not between {low} and {high}"
            )
        return Observed({"min": low, "max": high}, {"result": result})


class RandomProvider(Provider):
    """Random values drawn once and kept in the state."""

    name = "random"
    description = "Random ids, strings, passwords and integers, drawn once and kept."
    resource_types = (RandomId, RandomString, RandomPassword, RandomInteger)
