"""Shared layer of the Stripe billing-portal backend: settings, Stripe client,
portal flows, return-URL policy, models and the DynamoDB store.

Modules import only what they use so a function that never calls Stripe never
loads ``stripe``.
"""
