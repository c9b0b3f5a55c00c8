"""The writer process, the single owner of every write, and the frames workers send it."""
