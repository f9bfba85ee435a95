"""python -m pylane COMMAND [options]

    top    one Redis queue, live: python -m pylane top --redis URL --queue NAME [--once]
    demo   the in-process demo (also: python -m pylane.demo)

``python -m pylane COMMAND --help`` for a command's options.
"""

from __future__ import annotations

import sys
from typing import Optional

USAGE = __doc__ or ""


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(USAGE.strip(), file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help", "help"):
        print(USAGE.strip())
        return 0
    command, rest = args[0], args[1:]
    if command == "top":
        from .redis.top import main as top

        return top(rest)
    if command == "demo":
        from .demo import main as demo

        return demo(rest)
    print(f"python -m pylane: unknown command {command!r}\n\n{USAGE.strip()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
