"""``python -m writelane.lab serve|stress``."""

import sys

from .cli import main

sys.exit(main())
