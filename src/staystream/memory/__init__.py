"""State in shared memory: the calendar and listing columns, written by the writer, read by workers."""
