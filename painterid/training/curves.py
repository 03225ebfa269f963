"""Learning curves (the report's Figure 8): training/validation loss and validation AUC per epoch."""

from __future__ import annotations

import io


def curves_png(history: list[dict], title: str) -> bytes:
    """Render the history (one dict per epoch) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        vals = [h.get(key) for h in history]
        if any(v is not None for v in vals):
            ax1.plot(epochs, vals, marker="o", ms=3, label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    for key, label in (("train_auc", "training AUC"), ("val_auc", "validation AUC (unseen artists)")):
        vals = [h.get(key) for h in history]
        if any(v is not None for v in vals):
            ax2.plot(epochs, vals, marker="o", ms=3, label=label)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("ROC AUC")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
