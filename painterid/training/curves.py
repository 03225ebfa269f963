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
    panels = ((ax1, "loss", (("train_loss", "training loss"), ("val_loss", "validation loss"))),
              (ax2, "ROC AUC", (("train_auc", "training AUC"), ("val_auc", "validation AUC (unseen artists)"))))
    for ax, ylabel, series in panels:
        for key, label in series:
            vals = [h.get(key) for h in history]
            if any(v is not None for v in vals):
                ax.plot(epochs, vals, marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
