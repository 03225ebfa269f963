"""data: paintings as labelled files, before any pixel is read. Data set layouts (Kaggle CSV, folder per artist),
pairs and their protocols (seen / unseen / mixed, within one source), artist-disjoint splits, and synthetic
artists for tests and benchmarks.

May import: painterid.core."""
