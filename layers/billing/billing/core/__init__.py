"""Shared values with no I/O: the domain types, the errors and which subscription a user manages."""
