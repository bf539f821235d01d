"""``python -m infocam.cli`` runs the command-line tool, as ``python -m infocam`` does."""

import sys

from infocam.cli import main

sys.exit(main())
