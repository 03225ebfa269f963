import subprocess
import sys
from pathlib import Path

from painterid.embedding.backbones import list_backbones
from painterid.embedding.factory import create_backbone, describe


def test_describe_matches_a_built_model():
    model, cfg = create_backbone("efficientnet_lite0", pretrained=False)
    d = describe("efficientnet_lite0")
    assert d["dim"] == model.num_features == 1280
    assert d["input_size"] == tuple(cfg["input_size"])
    assert describe("efficientnet_lite2")["input_size"] == (3, 260, 260)
    assert describe("xception")["dim"] == 2048  # no weights needed to describe


def test_backbones_command_lists_every_entry_with_availability():
    proc = subprocess.run([sys.executable, "-m", "painterid.cli", "backbones"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for spec in list_backbones():
        assert spec.name in proc.stdout
    line = next(l for l in proc.stdout.splitlines() if "efficientnet_lite2 " in l)
    assert "1280" in line and "260×260" in line and "yes" in line
    # each backbone's default pooling (BackboneSpec.default_pool): measured for the Lite family, gap elsewhere
    assert " stage " in line
    assert " gap " in next(l for l in proc.stdout.splitlines() if "xception " in l)
