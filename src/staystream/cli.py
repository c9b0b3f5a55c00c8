"""The `staystream` command: `serve` runs the service, `import` loads native source files, `probe`
checks from outside that acknowledged writes become searchable."""

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
    from . import probe

    probe.add_arguments(commands.add_parser("probe", help="write a canary price and time until search shows it"))
    args = parser.parse_args(argv)
    if args.command == "probe":
        return probe.main(args)
    if args.command == "import":
        return importer.main(args)
    if args.command == "serve":
        from staystream.supervisor import serve as run

        return run(settings.from_arguments(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
