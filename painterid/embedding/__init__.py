"""embed: image files to vectors. Loading and views (resize, center, corners, native-resolution patches), the
backbones and where their weights come from, poolings, the torch Embedder and the ONNX Runtime one (and the
one-time export), the runtime choice between them, per-patch vectors, the data-set pipeline into a store and
distributed embedding.

May import: painterid.store, painterid.data, painterid.core."""
