"""`staystream import`: native source files streamed through an adapter into a service."""
