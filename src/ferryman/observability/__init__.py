"""What an operator watches: logs (``logs.py``: timestamped text or JSON lines, the deploy
lifecycle as events), Prometheus metrics computed from the database at scrape time
(``metrics.py``) and readiness (``health.py``)."""
