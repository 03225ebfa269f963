"""store: vectors kept on disk. The FeatureStore (a directory of embeddings keyed by file content, resumable and
safe to share between processes), the cache of stores that `compare` and the data-set commands use, and the
listing of a DATA folder or STORE that `split` writes a split file from.

May import: painterid.data, painterid.core."""
