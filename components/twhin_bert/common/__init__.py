"""Shared pieces: artifact schemas, I/O (local and gs://), config base, tracking, progress."""
