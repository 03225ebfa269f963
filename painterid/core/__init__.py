"""core: what every layer stands on. Errors (one line, exit 2), the registry of named parts, atomic artefact io
and inter-process locks, where the cache lives, the shipped defaults, the version and device detection.

May import: nothing of painterid (the standard library, numpy and filelock only)."""
