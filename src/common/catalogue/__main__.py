"""``python -m common.catalogue``: print the metric tables, or write or check a docs page."""

import sys

from common.catalogue.docs import main

sys.exit(main())
