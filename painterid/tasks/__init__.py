"""tasks: the jobs a user runs with a model, one module each. compare (pairs, through the content-hash cache),
verify (a questioned painting against one artist's references, as a likelihood ratio), evidence (the patches a
score rests on, and verify's HTML page), identify and the FAISS ArtistIndex (identify_sets: the same set
evidence per indexed artist), explain (what drives a score), submit (the Kaggle file), calibrate and setfit (refit
p(same) and the set calibration on a user's labelled paintings).

May import: painterid.evaluation, painterid.scoring, painterid.embedding, painterid.store, painterid.data,
painterid.core; never painterid.training (the screening commands start fast) or painterid.cli."""
