"""Prices: the catalogue data model, name resolution, and the calculator (pure)."""
