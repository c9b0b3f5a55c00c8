"""The `staystream` command: `serve` runs the service, `import` loads native source files."""

from __future__ import annotations

import argparse
import sys

from staystream import config as settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="staystream", description="Real-time lodging prices and availability.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service (HTTP API, writer, workers)")
    settings.add_arguments(serve)
    from staystream.importer import command as importer

    importer.add_arguments(commands.add_parser("import", help="stream native source files into the store"))
    args = parser.parse_args(argv)
    if args.command == "import":
        return importer.main(args)
    if args.command == "serve":
        from staystream.supervisor import serve as run

        return run(settings.from_arguments(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
