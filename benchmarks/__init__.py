"""Benchmarks of staystream, outside the package: `python -m benchmarks.run` (or `make bench`).

- `workload`: the synthetic city, its prefill events and the request bodies of the load.
- `loadgen`: the load generator (own processes, raw HTTP/1.1 keep-alive, open or closed loop).
- `service`: starts `staystream serve` on a free port and measures its processes.
- `ceiling`: the store alone (`CalendarWriter` + `db.commit_group`), no HTTP in front.
- `scenarios`: the measured scenarios; `run`: the command line, repeats, results file.
"""
