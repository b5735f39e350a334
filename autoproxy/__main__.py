"""``python -m autoproxy``: the ``autoproxy`` command, for environments without the console script."""
from autoproxy.cli import main

main()
