from __future__ import annotations

import sys

from tools.catalogue.build import main

sys.exit(main())
