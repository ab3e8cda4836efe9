"""Which label values a metric may carry: a bounded set, always.

Prometheus keeps one time series per distinct label set, so a label fed from caller input
(an end customer id, an arbitrary model name) grows without bound — LiteLLM's gauges and
counters did (known failure modes §11b). Here:

* a model name that is not in the config's ``model_list`` (as a model group or as the
  upstream model of a deployment) becomes ``other``;
* the end customer label is empty unless the operator turns it on
  (``litellm_settings.enable_end_user_cost_tracking_prometheus_only``, LiteLLM's key);
* keys, users, teams and organizations are entities the operator created, so their number
  is what the operator configured; nothing per request (request id, IP, user agent) is a label.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["OTHER", "LabelPolicy"]

OTHER = "other"
"""The label value of every model name that is not configured."""


class LabelPolicy:
    """Maps the values a request carries onto bounded label values.

    Args:
        models: every configured model name (model groups and upstream model names).
        end_user: keep the end customer as a label (off by default).
    """

    __slots__ = ("end_user", "models")

    def __init__(self, models: Iterable[str], *, end_user: bool = False) -> None:
        self.models = frozenset(models)
        self.end_user = end_user

    def model(self, name: str | None) -> str:
        """``name`` when it is configured, else ``other``."""
        return name if name is not None and name in self.models else OTHER

    def customer(self, end_user: str | None) -> str:
        """The end customer label: empty unless turned on."""
        return (end_user or "") if self.end_user else ""
