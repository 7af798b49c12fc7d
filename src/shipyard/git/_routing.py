"""How URLs name repositories, ``owner/name`` ones included.

A repository name is one or two parts (``demo``, ``acme/demo``), so it may hold a
``/``, and the content routes append words to it (``/repos/acme/demo/refs``,
``/repos/acme/demo/commits/refs/heads/x``, where the revision may hold ``/`` too). A
greedy ``{name:path}`` would read ``/repos/a/commits/x/commits/y`` wrongly, so routes
use the ``shipyard_repo`` path convertor registered here instead: one part, optionally
``/`` and a second part that is not one of
:data:`~shipyard.git._names.RESERVED_SUFFIXES` (``blob``, ``commits``, ``compare``,
``files``, ``refs``, ``tree``). Creating a repository whose second part is one of those
words is refused, so every URL has exactly one reading:

- ``/repos/a/refs``: the refs of ``a`` (``a/refs`` cannot exist);
- ``/repos/a/b/refs``: the refs of ``a/b``;
- ``/repos/a/commits/feature/x``: commit ``feature/x`` of ``a``;
- ``/a/b.git/info/refs``: smart HTTP for ``a/b``.

The convertor matches any characters but ``/`` in each part; handlers then check the
name fully (:func:`~shipyard.git._names.check_repo_name`), so a bad name gets a 400 that
says what is wrong rather than a bare 404.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from shipyard.git._names import RESERVED_SUFFIXES

__all__ = ["RepoNameConvertor"]


class RepoNameConvertor(Convertor[str]):
    """``name`` or ``owner/name``, the second part not a reserved suffix word."""

    regex = (
        r"[^/]+(?:/(?!(?:" + "|".join(RESERVED_SUFFIXES) + r")(?:/|$))[^/]+)?"
    )

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("shipyard_repo", RepoNameConvertor())
