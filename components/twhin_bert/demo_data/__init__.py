"""Deterministic generator of a realistic demo TwHIN (tweets, engagements, planted truth)."""
