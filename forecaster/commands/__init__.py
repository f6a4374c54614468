"""One module per sub-command of ``forecaster``: each has ``add_arguments(parser)`` and ``run(args) -> int``."""
