"""The bytes of a state on disk: version snapshots and journal records.

Sensitive values never reach these bytes in plain text: a resource's sensitive
properties and attributes (and sensitive outputs) are taken out of the record and sealed
with the state key (see ``_crypto``). Decoding checks every field's type, so a file
edited by hand or damaged is reported, not half-loaded.

A snapshot (``versions/00000042.json``)::

    # shipyard infra state v1 sha256=<hex digest of every byte after this line>
    {"format":"shipyard-infra-state","version":1,"serial":42,"lineage":"…","time":"…",
     "operation":"apply","owner":"alice@host","resources":1000,"outputs":2,"key_id":null}
    {"outputs":{…},"sealed":null,"resources":[
    {"address":"web","type":"process","id":"4121",…},
    …
    ]}

(the header is one line). ``sealed`` is null or ``{"k": key id, "v": sealed JSON of
{"resources": {address: {"p": {...}, "a": {...}}}, "outputs": {name: value}}}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shipyard.errors import StateError
from shipyard.infra._crypto import Cipher
from shipyard.infra._state_model import OutputState, ResourceState, State

__all__ = [
    "Corrupt",
    "decode_outputs",
    "decode_resource",
    "decode_snapshot",
    "dumps",
    "encode_outputs",
    "encode_resource",
    "encode_snapshot",
    "join_resource",
    "normalized",
    "read_header",
    "split_resource",
]

MAGIC = b"# shipyard infra state v1 sha256="
FORMAT = "shipyard-infra-state"
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_SNAPSHOT_AAD = b"shipyard-infra-snapshot"

# Gives the cipher of the configured key; called only when a sensitive value is met.
CipherSource = Callable[[], Cipher]


class Corrupt(ValueError):
    """Bytes that are not a valid state record; the message says what is wrong."""


def dumps(value: Any) -> bytes:
    """Compact JSON (ASCII, no NaN)."""
    return _ENCODER.encode(value).encode("ascii")


def normalized(value: Any) -> Any:
    """``value`` as it reads back from JSON: a deep copy with tuples made lists."""
    return json.loads(dumps(value))


def _seal(cipher: CipherSource, secret: Any, aad: bytes) -> dict[str, str]:
    c = cipher()
    return {"k": c.id, "v": c.seal(dumps(secret), aad)}


def _open(cipher: CipherSource, sealed: Any, aad: bytes, where: str) -> Any:
    if not isinstance(sealed, dict) or not isinstance(sealed.get("v"), str):
        raise Corrupt("a sealed value is not {'k': key id, 'v': ciphertext}")
    c = cipher()
    if sealed.get("k") != c.id:
        raise StateError(
            f"{where}: the sensitive values were encrypted with the key whose id is "
            f"{sealed.get('k')}, but the key from {c.source} has id {c.id}; set "
            "SHIPYARD_INFRA_KEY (or the key file) to the key the state was written with"
        )
    try:
        return json.loads(c.open(sealed["v"], aad, where))
    except ValueError:
        raise Corrupt("a sealed value does not decrypt to JSON") from None


# ---------------------------------------------------------------- resources


def split_resource(rs: ResourceState) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The record of ``rs`` without its sensitive values, and those values (or None)."""
    props, attrs = rs.properties, rs.attributes
    secret: dict[str, Any] | None = None
    if rs.sensitive:
        names = set(rs.sensitive)
        hidden_p = {k: v for k, v in props.items() if k in names}
        hidden_a = {k: v for k, v in attrs.items() if k in names}
        if hidden_p or hidden_a:
            secret = {}
            if hidden_p:
                secret["p"] = hidden_p
                props = {k: v for k, v in props.items() if k not in names}
            if hidden_a:
                secret["a"] = hidden_a
                attrs = {k: v for k, v in attrs.items() if k not in names}
    rec: dict[str, Any] = {
        "address": rs.address,
        "type": rs.type,
        "id": rs.id,
        "properties": props,
        "attributes": attrs,
        "dependencies": rs.dependencies,
        "sensitive": rs.sensitive,
    }
    if rs.dir != ".":
        rec["dir"] = rs.dir
    if rs.tainted:
        rec["tainted"] = True
    return rec, secret


def _str_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Corrupt(f"{name} is not a list of strings")
    return value


def join_resource(rec: Any, secret: Any) -> ResourceState:
    """A ResourceState from its record and its unsealed sensitive values (or None)."""
    if not isinstance(rec, dict):
        raise Corrupt("a resource record is not an object")
    address = rec.get("address")
    if not isinstance(address, str) or not address:
        raise Corrupt("a resource record has no address")
    props, attrs = rec.get("properties"), rec.get("attributes")
    type_, id_, dir_ = rec.get("type"), rec.get("id"), rec.get("dir", ".")
    if not (isinstance(type_, str) and isinstance(id_, str) and isinstance(dir_, str)):
        raise Corrupt(f"resource {address}: type, id and dir must be strings")
    if not isinstance(props, dict) or not isinstance(attrs, dict):
        raise Corrupt(f"resource {address}: properties and attributes must be objects")
    tainted = rec.get("tainted", False)
    if not isinstance(tainted, bool):
        raise Corrupt(f"resource {address}: tainted must be true or false")
    if secret is not None:
        hidden_p, hidden_a = (
            (secret.get("p", {}), secret.get("a", {})) if isinstance(secret, dict) else (0, 0)
        )
        if not isinstance(hidden_p, dict) or not isinstance(hidden_a, dict):
            raise Corrupt(f"resource {address}: its sealed values are not objects")
        props = {**props, **hidden_p}
        attrs = {**attrs, **hidden_a}
    return ResourceState(
        address=address,
        type=type_,
        id=id_,
        properties=props,
        attributes=attrs,
        dependencies=_str_list(rec.get("dependencies"), f"resource {address}: dependencies"),
        sensitive=_str_list(rec.get("sensitive"), f"resource {address}: sensitive"),
        dir=dir_,
        tainted=tainted,
    )


def encode_resource(rs: ResourceState, cipher: CipherSource) -> tuple[ResourceState, bytes]:
    """A private normalized copy of ``rs`` and its journal ``put`` record."""
    try:
        plain = dumps(rs.to_json())
    except (TypeError, ValueError) as e:
        raise Corrupt(f"resource {rs.address} cannot be recorded: {e}") from None
    copy = join_resource(json.loads(plain), None)
    rec, secret = split_resource(copy)
    if secret is None:
        return copy, b'{"op":"put","r":' + plain + b"}"
    rec["sealed"] = _seal(cipher, secret, b"put\0" + copy.address.encode())
    return copy, dumps({"op": "put", "r": rec})


def decode_resource(rec: Any, cipher: CipherSource, where: str) -> ResourceState:
    """A ResourceState from a journal ``put`` record."""
    secret = None
    if isinstance(rec, dict) and "sealed" in rec:
        address = str(rec.get("address"))
        secret = _open(cipher, rec["sealed"], b"put\0" + address.encode(), where)
    return join_resource(rec, secret)


# ---------------------------------------------------------------- outputs


def _outputs_json(outputs: dict[str, OutputState]) -> dict[str, Any]:
    return {n: {"value": o.value, "sensitive": o.sensitive} for n, o in outputs.items()}


def _outputs_from(data: Any) -> dict[str, OutputState]:
    if not isinstance(data, dict):
        raise Corrupt("outputs is not an object")
    out: dict[str, OutputState] = {}
    for name, o in data.items():
        if not isinstance(o, dict) or not isinstance(o.get("sensitive"), bool) or "value" not in o:
            raise Corrupt(f"output {name} is not {{value, sensitive}}")
        out[name] = OutputState(o["value"], o["sensitive"])
    return out


def encode_outputs(
    outputs: dict[str, OutputState], cipher: CipherSource
) -> tuple[dict[str, OutputState], bytes]:
    """A normalized copy of ``outputs`` and its journal ``outputs`` record."""
    try:
        copy = _outputs_from(normalized(_outputs_json(outputs)))
    except (TypeError, ValueError) as e:
        raise Corrupt(f"the outputs cannot be recorded: {e}") from None
    rec: dict[str, Any] = {}
    for name, o in copy.items():
        if o.sensitive:
            rec[name] = {"sensitive": True, "sealed": _seal(cipher, o.value, _output_aad(name))}
        else:
            rec[name] = {"value": o.value, "sensitive": False}
    return copy, dumps({"op": "outputs", "o": rec})


def _output_aad(name: str) -> bytes:
    return b"output\0" + name.encode()


def decode_outputs(rec: Any, cipher: CipherSource, where: str) -> dict[str, OutputState]:
    """The outputs of a journal ``outputs`` record."""
    if not isinstance(rec, dict):
        raise Corrupt("an outputs record is not an object")
    plain: dict[str, Any] = {}
    for name, o in rec.items():
        if isinstance(o, dict) and "sealed" in o:
            o = {
                "value": _open(cipher, o["sealed"], _output_aad(str(name)), where),
                "sensitive": True,
            }
        plain[name] = o
    return _outputs_from(plain)


# ---------------------------------------------------------------- snapshots


def encode_snapshot(state: State, header: dict[str, Any], cipher: CipherSource) -> bytes:
    """The bytes of a version file; ``header`` gets the counts and the key id added."""
    records: list[bytes] = []
    sealed_resources: dict[str, Any] = {}
    for address in sorted(state.resources):
        rec, secret = split_resource(state.resources[address])
        if secret is not None:
            sealed_resources[address] = secret
        records.append(dumps(rec))
    outputs: dict[str, Any] = {}
    sealed_outputs: dict[str, Any] = {}
    for name in sorted(state.outputs):
        o = state.outputs[name]
        if o.sensitive:
            sealed_outputs[name] = o.value
            outputs[name] = {"sensitive": True}
        else:
            outputs[name] = {"value": o.value, "sensitive": False}
    sealed: dict[str, str] | None = None
    if sealed_resources or sealed_outputs:
        secret = {"resources": sealed_resources, "outputs": sealed_outputs}
        sealed = _seal(cipher, secret, _SNAPSHOT_AAD)
    header = {
        **header,
        "format": FORMAT,
        "version": 1,
        "resources": len(records),
        "outputs": len(outputs),
        "key_id": sealed["k"] if sealed else None,
    }
    body = b"".join(
        [
            dumps(header),
            b'\n{"outputs":',
            dumps(outputs),
            b',"sealed":',
            dumps(sealed),
            b',"resources":[\n',
            b",\n".join(records),
            b"\n]}\n",
        ]
    )
    return MAGIC + hashlib.sha256(body).hexdigest().encode("ascii") + b"\n" + body


def _split_magic(data: bytes) -> tuple[bytes, bytes]:
    """The checksum line's digest and the rest; Corrupt if it is not a snapshot."""
    if not data.startswith(MAGIC):
        raise Corrupt("it does not start with the shipyard state header line")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise Corrupt("it is truncated in its first line")
    return data[len(MAGIC) : end], data[end + 1 :]


def _parse_header(line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError:
        raise Corrupt("its header line is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise Corrupt("its header line is not a shipyard state header")
    if header.get("version") != 1:
        raise Corrupt(
            f"it is format version {header.get('version')}, which this shipyard does not read"
        )
    for key, kind in (("serial", int), ("lineage", str), ("time", str), ("operation", str)):
        if not isinstance(header.get(key), kind):
            raise Corrupt(f"its header has no valid {key}")
    try:
        datetime.fromisoformat(header["time"])
    except ValueError:
        raise Corrupt("its header time is not an ISO 8601 time") from None
    return header


def read_header(head: bytes) -> dict[str, Any]:
    """The header of a snapshot from its first bytes (unverified: for listings)."""
    _, rest = _split_magic(head)
    end = rest.find(b"\n")
    if end < 0:
        raise Corrupt("its header line is truncated")
    return _parse_header(rest[:end])


def decode_snapshot(data: bytes, cipher: CipherSource, where: str) -> tuple[dict[str, Any], State]:
    """The header and the state of a version file's bytes; checks the checksum."""
    digest, body = _split_magic(data)
    if hashlib.sha256(body).hexdigest().encode("ascii") != digest:
        raise Corrupt("its checksum does not match its content (truncated or altered)")
    end = body.find(b"\n")
    header = _parse_header(body[:end])
    try:
        doc = json.loads(body[end + 1 :])
    except ValueError as e:
        raise Corrupt(f"its content is not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
        raise Corrupt("its content has no resources list")
    secret: dict[str, Any] = {"resources": {}, "outputs": {}}
    if doc.get("sealed") is not None:
        secret = _open(cipher, doc["sealed"], _SNAPSHOT_AAD, where)
        if not isinstance(secret, dict):
            raise Corrupt("its sealed values are not an object")
    sealed_resources = secret.get("resources") or {}
    resources: dict[str, ResourceState] = {}
    for rec in doc["resources"]:
        address = rec.get("address") if isinstance(rec, dict) else None
        rs = join_resource(rec, sealed_resources.get(address))
        resources[rs.address] = rs
    raw_outputs = doc.get("outputs")
    if not isinstance(raw_outputs, dict):
        raise Corrupt("its outputs are not an object")
    sealed_outputs = secret.get("outputs") or {}
    plain: dict[str, Any] = {}
    for name, o in raw_outputs.items():
        if isinstance(o, dict) and o.get("sensitive") is True:
            if name not in sealed_outputs:
                raise Corrupt(f"the sensitive output {name} has no sealed value")
            o = {"value": sealed_outputs[name], "sensitive": True}
        plain[name] = o
    state = State(
        lineage=header["lineage"],
        serial=header["serial"],
        resources=resources,
        outputs=_outputs_from(plain),
    )
    return header, state
