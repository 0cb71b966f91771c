"""HTTP plumbing shared by the API functions: error bodies, exception handlers, the caller."""
