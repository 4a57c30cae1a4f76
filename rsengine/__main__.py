"""``python -m rsengine`` runs the ``rsengine`` command (see rsengine.cli)."""
import sys

from .cli import console_main

sys.exit(console_main())
