"""Traveler watches: saved searches that send `entered`, `left` and `price_drop` events."""
