"""One module per ``flowengine`` subcommand, each with ``configure(parser)`` and ``run(args, stdout, stderr)``."""
