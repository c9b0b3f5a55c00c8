"""Places: which listings are one property, decided incrementally and explained.

Self-contained: plain values in (keys, coordinates, names, addresses, kinds, capacities,
property ids, links), places out. `matching` decides pairs; `graph` keeps the places.
"""
