"""Client commands for the server's repositories, runners and login."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape

from shipyard.cli._remote import (
    JsonOpt,
    ServerOpt,
    TokenOpt,
    connect,
    fail,
    print_json,
    reporting_errors,
    write_config,
)
from shipyard.cli._render import ago, items, repo_table, runner_table

__all__ = ["register"]

console = Console(highlight=False)

repo_app = typer.Typer(
    name="repo", help="Create, list, show and delete repositories on the server.",
    no_args_is_help=True, rich_markup_mode=None,
)


def _repo_path(name: str) -> str:
    # owner/name keeps its slash: the server's routes take it as one parameter.
    return "/repos/" + quote(name, safe="/")


def login(
    server: Annotated[str, typer.Option("--server", help="The server's URL, e.g. http://127.0.0.1:8080.")],
    token: Annotated[str, typer.Option("--token", help="A token the server issued (shipyard up prints the admin's).")],
    as_json: JsonOpt = False,
) -> None:
    """Check a server and token, and keep them in the config file for later commands."""
    server = server.rstrip("/")
    if not server.startswith(("http://", "https://")):
        fail(f"--server must be an http:// or https:// URL, got {server!r}")
    with connect(server, token) as remote:
        me = remote.get("/whoami")
    with reporting_errors():
        path = write_config(server, token)
    if as_json:
        print_json({"server": server, "config": str(path), **me})
        return
    scopes = ", ".join(me.get("scopes") or []) or "no scopes"
    console.print(f"Logged in to [bold]{escape(server)}[/bold] as [bold]{escape(str(me.get('subject')))}[/bold] ({escape(scopes)})")
    console.print(f"[dim]saved in {escape(str(path))}[/dim]")


@repo_app.command("create")
def repo_create(
    name: Annotated[str, typer.Argument(help="[owner/]name")],
    description: Annotated[str, typer.Option("--description", "-d", help="A one-line description.")] = "",
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a repository; prints its clone URL."""
    with connect(server, token) as remote:
        body: dict[str, str] = {"name": name}
        if description:
            body["description"] = description
        repo = remote.post("/repos", json=body)
    if as_json:
        print_json(repo)
        return
    console.print(f"Created [bold]{escape(repo['name'])}[/bold]")
    console.print(f"  clone: {escape(str(repo.get('clone_url', '')))}", soft_wrap=True)
    console.print(f"  push:  git remote add origin {escape(str(repo.get('clone_url', '')))} && git push -u origin HEAD",
                  soft_wrap=True)


@repo_app.command("list")
def repo_list(server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List repositories, by name."""
    with connect(server, token) as remote:
        repos = items(remote.get("/repos"), "repos")
    if as_json:
        print_json(repos)
    elif not repos:
        console.print("No repositories yet: create one with `shipyard repo create NAME`.")
    else:
        console.print(repo_table(repos))


@repo_app.command("show")
def repo_show(
    name: Annotated[str, typer.Argument(help="[owner/]name")],
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Show a repository, its branches and tags."""
    with connect(server, token) as remote:
        repo = remote.get(_repo_path(name))
        refs = remote.get(_repo_path(name) + "/refs")
    if as_json:
        print_json({**repo, "refs": refs.get("refs", {}), "head": refs.get("head")})
        return
    console.print(f"[bold]{escape(repo['name'])}[/bold]  {escape(str(repo.get('description') or ''))}")
    console.print(f"  clone URL:      {escape(str(repo.get('clone_url', '')))}")
    console.print(f"  default branch: {escape(str(repo.get('default_branch') or '-'))}")
    console.print(f"  created:        {ago(repo.get('created_at'))}")
    all_refs: dict[str, str] = refs.get("refs") or {}
    if not all_refs:
        console.print("  [dim]empty: nothing pushed yet[/dim]")
    for ref, sha in sorted(all_refs.items()):
        mark = "*" if ref == refs.get("head") else " "
        console.print(f"  {mark} {escape(ref):<40} {sha[:12]}")


@repo_app.command("delete")
def repo_delete(
    name: Annotated[str, typer.Argument(help="[owner/]name")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Really delete it, with all its history.")] = False,
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Delete a repository and all its history (needs --yes)."""
    if not yes:
        fail(f"deleting {name} removes it and all its history: add --yes to confirm")
    with connect(server, token) as remote:
        remote.delete(_repo_path(name))
    if as_json:
        print_json({"deleted": name})
    else:
        console.print(f"Deleted {escape(name)}")


def runners(server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List the runners registered with the server."""
    with connect(server, token) as remote:
        found = items(remote.get("/runners"), "runners")
    if as_json:
        print_json(found)
    elif not found:
        console.print("No runners registered: `shipyard up --runners N` starts local ones.")
    else:
        console.print(runner_table(found))


def register(app: typer.Typer) -> None:
    """Add these commands to ``app``."""
    app.command("login")(login)
    app.add_typer(repo_app)
    app.command("runners")(runners)

