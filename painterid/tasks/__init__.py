"""tasks: the jobs a user runs with a model, one module each. compare (pairs, through the content-hash cache),
identify and the FAISS ArtistIndex, explain (what drives a score), submit (the Kaggle file), calibrate (refit
p(same) on a user's labelled pairs).

May import: painterid.evaluation, painterid.scoring, painterid.embedding, painterid.store, painterid.data,
painterid.core; never painterid.training (the screening commands start fast) or painterid.cli."""
