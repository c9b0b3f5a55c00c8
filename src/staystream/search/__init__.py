"""The read side: a worker's view of the store, and search over it."""
