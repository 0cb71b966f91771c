"""``make bench`` and ``make bench-check``: what an operation costs, and the budgets it keeps.

- ``stack``: the product offline in this process (moto, the Stripe stand-in, a seeded
  account) with hooks that count DynamoDB requests and Stripe calls.
- ``counts``: requests per operation (snapshot, each portal flow, each webhook type).
- ``timing``: warm snapshot latency and webhook throughput, against bare DynamoDB calls.
- ``cold_start``: import time of each built function in fresh interpreters.
- ``artifacts``: zipped sizes of what ``sam build`` produced.
- ``budgets``: the budgets, evaluated over those measurements (``python -m bench.check``).
- ``report``: the markdown table (``python -m bench`` writes ``bench/results/latest.md``).
"""
