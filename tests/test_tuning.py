import json

import torch

from painterid.embedding.pipeline import labelled
from painterid.training import TUNING_GRID, TrainOptions, train_model


def test_tune_keeps_the_configuration_best_on_validation_artists(small_store, tmp_path):
    lab = labelled(small_store)
    model, history, split = train_model(lab, tmp_path / "m", TrainOptions(method="siamese", epochs=4, seed=0),
                                        val=0.25, test=0.25, tune=True)
    tuning = model.info["tuning"]
    assert len(tuning["grid"]) == len(TUNING_GRID)
    best = max(tuning["grid"], key=lambda t: t["val_auc"])
    assert tuning["chosen"] == best
    assert model.info["validation"]["auc"] == best["val_auc"]
    assert model.info["options"]["lr"] == best["lr"] and model.head_params["hidden"] == best["hidden"]
    # no test artist took part in the choice
    assert not set(split["artists"]["test"]) & set(split["artists"]["val"])
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["info"]["tuning"]["chosen"] == best
    # the recorded figures are real: training the chosen configuration alone gives the same head and AUC,
    # and training a configuration that lost gives its recorded, lower AUC
    alone, _, _ = train_model(lab, tmp_path / "alone", TrainOptions(method="siamese", epochs=4, seed=0,
                                                                     lr=best["lr"], hidden=best["hidden"]),
                              val=0.25, test=0.25)
    assert alone.info["validation"]["auc"] == best["val_auc"]
    assert all(torch.equal(v, alone.head.state_dict()[k]) for k, v in model.head.state_dict().items())
    loser = min(tuning["grid"], key=lambda t: t["val_auc"])
    if loser["val_auc"] < best["val_auc"]:
        other, _, _ = train_model(lab, tmp_path / "other", TrainOptions(method="siamese", epochs=4, seed=0,
                                                                         lr=loser["lr"], hidden=loser["hidden"]),
                                  val=0.25, test=0.25)
        assert other.info["validation"]["auc"] == loser["val_auc"] < model.info["validation"]["auc"]
