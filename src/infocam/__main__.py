"""``python -m infocam`` runs the command-line tool."""

import sys

from infocam.cli import main

sys.exit(main())
