"""The edges on AWS: settings from the environment, secrets, library log levels."""
