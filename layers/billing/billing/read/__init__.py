"""The read path: the billing snapshot and invoice pages (no stripe, no pydantic)."""
