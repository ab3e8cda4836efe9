"""The pure core: money, usage, pricing, periods and policy. No I/O lives here."""
