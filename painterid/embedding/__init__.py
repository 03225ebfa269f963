"""embedding: image files to vectors. Loading and views (resize, center, corners, native-resolution patches), the
backbones (a curated registry, or any timm model as timm:NAME / hf-hub:ORG/REPO) and where their weights come
from, poolings, the torch Embedder and the ONNX Runtime one (and the
one-time export), the runtime choice between them, per-patch vectors, the data-set pipeline into a store and
distributed embedding.

May import: painterid.store, painterid.data, painterid.core."""
