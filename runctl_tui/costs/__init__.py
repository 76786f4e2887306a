"""Prices and cost arithmetic, in ``Decimal`` dollars; no Textual, no I/O beyond bundled data."""
