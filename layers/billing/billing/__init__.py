"""Shared layer of the Stripe billing-portal backend, one subpackage per flow.

``portal`` (sessions, flow deep links, return URLs), ``projection`` (the webhook
path), ``read`` (the snapshot and invoice pages), ``provisioning`` (the deploy
path), ``store`` (the one DynamoDB store), ``core`` (shared values), and the
edges: ``aws``, ``stripe_api``, ``api``. The rules between them are an
import-linter contract in ``pyproject.toml``.

Modules import only what they use, so a function that never calls Stripe never
loads ``stripe``.
"""
