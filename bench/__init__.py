"""Benchmarks for runctl-tui: start-up, a 1,000-instance poll and UI stalls, each as a ratio.

Run them with ``make bench`` (``python -m bench``); see ``bench/README.md``. Never collected by
pytest: nothing here is named ``test_*``.
"""
