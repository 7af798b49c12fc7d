"""A tiny program for Shipyard's quickstart: greets, and knows its version."""

import sys

__version__ = "1.2.0"


def greet(name: str, greeting: str = "Hello") -> str:
    return f"{greeting}, {name}!"


if __name__ == "__main__":
    if sys.argv[1:] == ["--version"]:
        print(__version__)
    else:
        print(greet(sys.argv[1] if len(sys.argv) > 1 else "Shipyard"))
