"""The ledger: spend events, the durable recorder, rollups, reports and counter rebuild.

Modules: ``events`` (:class:`~spendgate.ledger.events.SpendEvent`), ``journal``,
``recorder`` (:class:`~spendgate.ledger.recorder.Recorder`), ``repository``,
``rollups``, ``reports`` (``spend_report``) and ``rebuild`` (``current_period_spend``).
Nothing is imported here, so ``spendgate.ledger.events`` stays free of SQLAlchemy.
"""
