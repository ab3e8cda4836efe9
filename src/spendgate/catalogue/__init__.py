"""Price catalogues: the bundled data file and converters from other formats.

* :mod:`spendgate.catalogue.litellm_format` turns LiteLLM's
  ``model_prices_and_context_window.json`` into spendgate's catalogue format (used at
  build time for the bundled file and at run time by ``spendgate prices import``), one
  model at a time with :mod:`spendgate.catalogue.litellm_model`.
* ``data/catalogue.json`` is the bundled catalogue, built by ``python -m tools.catalogue
  build`` from pinned upstream data.
"""

from __future__ import annotations
