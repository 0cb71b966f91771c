"""The webhook path: the event registry, records, the fold of an event and its intake."""
