"""``python -m rsengine`` runs the ``rsengine`` command (see rsengine.cli)."""
import sys

from .cli import main

sys.exit(main())
