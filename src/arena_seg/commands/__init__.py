"""One module per `arena-seg` subcommand: each has ``add_parser(subparsers)`` and ``run(args) -> int``."""
