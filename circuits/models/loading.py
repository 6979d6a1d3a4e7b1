"""Load a language model as a TransformerLens 4 ``TransformerBridge`` ready for edge-level work.

:func:`load_model` accepts three kinds of source:

1. **An in-memory Hugging Face model** (a ``transformers.PreTrainedModel``, e.g. from
   :func:`circuits.models.random.random_hf_model`). The bridge is built around that very
   object and *rewires it in place*: its submodules are replaced by bridge components (and
   ``device`` / ``dtype`` move it in place too). Compute any reference outputs from the raw
   model first, or pass a ``copy.deepcopy`` of it.
2. **A local directory** written by ``save_pretrained`` (a path that exists). It is loaded with
   ``local_files_only=True``; tokenizer files in the same directory are picked up if present.
3. **A Hugging Face Hub name** such as ``"gpt2"`` (a string that is not an existing path). The
   local HF cache is tried first. If the model is not cached, an offline setting
   (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``, read at call time) or a hub endpoint that
   cannot be reached within a few seconds fails at once with :class:`ModelLoadError`, instead
   of transformers' half a minute of retries. Only ``config.json`` is read before the
   architecture check, so an unsupported model is rejected before any weights are fetched.

Whatever the source, the bridge has the three edge-level hook flags on:
``use_attn_result`` (``blocks.{l}.attn.hook_result``, one residual write per head),
``use_split_qkv_input`` (``blocks.{l}.attn.hook_{q,k,v}_input``, one residual read per head
and port; ``hook_k_input`` / ``hook_v_input`` have one slot per key/value head on
grouped-query models) and ``use_hook_mlp_in`` (``blocks.{l}.hook_mlp_in``).

Numerics: the bridge is built *without* LayerNorm folding, weight centring, unembedding
centring or value-bias folding (``enable_compatibility_mode`` is never called), so its logits
equal the raw Hugging Face model's up to float round-off. :data:`PROCESSING` records this and
is copied onto every bridge as ``bridge.circuit_discovery_processing`` so reports can state it.
Consequently each head's q/k/v input is the *pre-LayerNorm* residual stream, and the heads'
results plus the attention output bias sum to ``blocks.{l}.hook_attn_out``.

Gemma-2 caveat: its blocks apply a norm to the attention output (``blocks.{l}.ln1_post``) and
to the MLP output before adding them to the residual stream. Per-head results are therefore
not additive contributions to the residual stream: they add up to the input of that
post-attention norm, not to what the block writes.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from graphs.errors import ArgumentTypeError, CircuitDiscoveryError

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

__all__ = [
    "HUB_PROBE_TIMEOUT_S",
    "PROCESSING",
    "SUPPORTED_ARCHITECTURES",
    "ModelLoadError",
    "NonFiniteWeightsError",
    "UnsupportedArchitectureError",
    "load_model",
    "unbridged",
]

#: Hugging Face model classes whose bridges have been checked against the raw model's logits
#: and support the per-head hook flags.
SUPPORTED_ARCHITECTURES: tuple[str, ...] = (
    "GPT2LMHeadModel",
    "GPTNeoXForCausalLM",
    "LlamaForCausalLM",
    "Qwen2ForCausalLM",
    "Gemma2ForCausalLM",
)

#: Weight processing applied when building the bridge: none, so logits match Hugging Face.
PROCESSING: dict[str, bool] = {
    "fold_ln": False,
    "center_writing_weights": False,
    "center_unembed": False,
    "fold_value_biases": False,
}

#: Upper bound, in seconds, on the reachability check of the Hugging Face Hub.
HUB_PROBE_TIMEOUT_S: float = 3.0

_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
_LOCAL_ADVICE = (
    "pass a local directory saved with save_pretrained instead: "
    "load_model('/path/to/dir') (e.g. after model.save_pretrained(dir) and "
    "tokenizer.save_pretrained(dir) on a machine with network access)"
)


class ModelLoadError(CircuitDiscoveryError, RuntimeError):
    """A model could not be loaded or cannot be used for edge-level circuit discovery."""


class UnsupportedArchitectureError(ModelLoadError):
    """The model's architecture is not in :data:`SUPPORTED_ARCHITECTURES`."""


class NonFiniteWeightsError(ModelLoadError):
    """A parameter of the model holds NaN or inf (checked at load, before any work)."""


def load_model(
    source: Any,
    *,
    tokenizer: Any = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    device_map: str | dict | None = None,
) -> TransformerBridge:
    """Return a ``TransformerBridge`` over ``source`` with the edge-level hook flags on.

    Args:
        source: An in-memory ``transformers.PreTrainedModel`` (rewired in place by the
            bridge), a local directory saved with ``save_pretrained``, or a Hub model name.
            See the module docstring.
        tokenizer: Optional tokenizer. When omitted, one saved next to a local / cached
            model is loaded if present; the bridge works on token ids without one.
            TransformerLens reloads tokenizers by ``name_or_path``, so one built in memory
            or named by a Hub id is first saved to a temporary directory (kept alive with
            the bridge) and reloaded from there; the object passed in is not modified.
        device: Device the Hugging Face model is moved to before bridging.
        dtype: Dtype the Hugging Face model is loaded in / cast to before bridging. ``None``
            keeps the model's dtype (for checkpoints: what transformers loads by default).
        device_map: For a model too large for one GPU: Hugging Face's ``device_map``
            (``"auto"``, ``"balanced"`` or a dict of module name -> device), passed to
            ``from_pretrained`` so that layers are spread over devices (needs ``accelerate``).
            Attribution and evaluation move each write and gradient to the device of the
            first layer's buffers. Not with ``device``, nor with an in-memory model.

    Raises:
        UnsupportedArchitectureError: the architecture is not in SUPPORTED_ARCHITECTURES.
        ModelLoadError: the source cannot be found or loaded (missing files, no network,
            offline mode) or its attention has no per-head fork point.
        NonFiniteWeightsError: a parameter holds NaN or inf (the message names it).
    """
    from transformers import PreTrainedModel

    if device_map is not None and (device is not None or isinstance(source, PreTrainedModel)):
        raise ModelLoadError(
            "device_map places the layers of a model loaded from a folder or the Hub; "
            "pass either device or device_map, and a path or Hub name with device_map"
        )
    if isinstance(source, PreTrainedModel):
        model = source
        _check_architecture(_module_architecture(model), repr(type(model).__name__))
    elif isinstance(source, (str, os.PathLike)):
        if _looks_like_path(source):
            model, found_tokenizer = _load_local(
                Path(source).expanduser(), tokenizer is None, dtype, device_map
            )
        else:
            model, found_tokenizer = _load_hub(str(source), tokenizer is None, dtype, device_map)
        tokenizer = tokenizer if tokenizer is not None else found_tokenizer
    else:
        raise ArgumentTypeError(
            "load_model expects a transformers.PreTrainedModel, a local directory or a "
            f"Hugging Face Hub name, got {type(source).__name__}"
        )

    if device_map is None and (device is not None or dtype is not None):
        model.to(device=device, dtype=dtype)
    model.eval()
    _check_finite(model)
    return _bridge(model, tokenizer)


def _check_finite(model: Any, chunk: int = 1 << 24) -> None:
    """NonFiniteWeightsError naming the first parameter with a NaN or inf (in chunks, so the
    check needs little memory beside the weights)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.device.type == "meta":
                continue  # offloaded: not in memory to check
            flat = param.detach().reshape(-1)
            for start in range(0, flat.numel(), chunk):
                part = flat[start : start + chunk]
                bad = int((~torch.isfinite(part)).sum())
                if bad:
                    raise NonFiniteWeightsError(
                        f"the model's weights are not finite: parameter {name!r} "
                        f"{tuple(param.shape)} is the first with NaN or inf values; the checkpoint "
                        "is damaged or was saved after training diverged: re-download or re-save it"
                    )


#: The attribute a bridge wraps each rewired Hugging Face submodule's original under.
_WRAPPED = "._original_component"


def unbridged(model: Any) -> Any:
    """``model`` itself, or, when :func:`load_model` has rewired it in place, a fresh model of
    its class, config and dtype holding its weights, which ``save_pretrained`` can write.

    The rewired model's state dict names every weight under bridge wrappers (and holds
    strided views such as GPT-2's q/k/v slices of ``c_attn``), which ``save_pretrained``
    cannot write and ``from_pretrained`` would not find.
    """
    state = model.state_dict()
    if not any(_WRAPPED in key for key in state):
        return model
    plain: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        plain.setdefault(key.replace(_WRAPPED, ""), value)
    dtype = next(model.parameters()).dtype
    fresh = type(model)(model.config).to(dtype)
    expected = fresh.state_dict()
    fresh.load_state_dict({key: plain[key] for key in expected}, strict=True)
    return fresh.eval()


# --------------------------------------------------------------------------- architecture


def _module_architecture(model: Any) -> str:
    """The supported class ``model`` is an instance of, else its own class name."""
    for cls in type(model).__mro__:
        if cls.__name__ in SUPPORTED_ARCHITECTURES:
            return cls.__name__
    return type(model).__name__


def _config_architecture(config: Any) -> str:
    """The causal-LM class a config describes (``architectures[0]`` or the Auto mapping)."""
    architectures = getattr(config, "architectures", None) or []
    for name in architectures:
        if name in SUPPORTED_ARCHITECTURES:
            return name
    if architectures:
        return architectures[0]
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM._model_mapping[type(config)].__name__
    except (KeyError, AttributeError):
        return f"{type(config).__name__} (model_type={getattr(config, 'model_type', None)!r})"


def _check_architecture(architecture: str, what: str) -> None:
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"{what} has architecture {architecture!r}, which circuit-discovery does not "
            f"support; supported architectures: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )


# --------------------------------------------------------------------------- local directory


def _looks_like_path(source: str | os.PathLike) -> bool:
    """True for existing paths and for strings that cannot be Hub ids (``/x``, ``./x``, ...)."""
    if isinstance(source, os.PathLike) or os.path.exists(os.path.expanduser(source)):
        return True
    return (
        source.startswith(("/", "./", "../", "~", "\\"))
        or source.count("/") > 1
        or "\\" in source
        or (len(source) > 1 and source[1] == ":")  # Windows drive
    )


def _has_tokenizer_files(path: Path) -> bool:
    names = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
    return any((path / name).is_file() for name in names)


def _load_local(
    path: Path, want_tokenizer: bool, dtype: torch.dtype | None, device_map: Any = None
) -> tuple[Any, Any]:
    """Config check, then weights (and tokenizer if present) from a save_pretrained dir."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not path.exists():
        raise ModelLoadError(f"local model directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise ModelLoadError(
            f"{str(path)!r} is a file, not a model directory saved with save_pretrained"
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{str(path)!r} is not a model directory: config.json is missing "
            "(save the model there with model.save_pretrained(dir))"
        )
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {str(path / 'config.json')!r}: {exc}") from exc
    _check_architecture(_config_architecture(config), f"the model in {str(path)!r}")
    kwargs: dict[str, Any] = {"local_files_only": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load model weights from {str(path)!r} (expected model.safetensors or "
            f"pytorch_model.bin written by save_pretrained): {exc}"
        ) from exc
    tokenizer = None
    if want_tokenizer and _has_tokenizer_files(path):
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load the tokenizer saved in {str(path)!r}: {exc}"
            ) from exc
    return model, tokenizer


# --------------------------------------------------------------------------- Hub


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in _TRUE_VALUES


def _offline_mode() -> bool:
    """Offline per the environment *now* (huggingface_hub only reads it at import)."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def _hub_reachable(endpoint: str, timeout: float) -> bool:
    """Whether the hub answers an HTTP HEAD within ``timeout`` seconds (DNS included).

    The request goes through huggingface_hub's own HTTP client, so proxies and certificates
    are those the download would use. Any HTTP answer counts as reachable; a bare TCP connect
    would not do, since some gateways accept connections to any address.
    """
    from huggingface_hub.utils import get_session

    result: list[bool] = []

    def attempt() -> None:
        try:
            get_session().head(endpoint, timeout=timeout)
            result.append(True)
        except Exception:  # connection, TLS, proxy or timeout errors of the HTTP client
            result.append(False)

    thread = threading.Thread(target=attempt, name="hf-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _load_hub(
    name: str, want_tokenizer: bool, dtype: torch.dtype | None, device_map: Any = None
) -> tuple[Any, Any]:
    """Load a Hub model: cache first, then (network permitting) the Hub."""
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    is_cached = isinstance(cached, str)
    if is_cached:
        try:
            return _from_pretrained(
                name, want_tokenizer, dtype, local_files_only=True, device_map=device_map
            )
        except UnsupportedArchitectureError:
            raise
        except ModelLoadError:
            pass  # only part of the model is cached: try the network
    offline = _offline_mode() or bool(getattr(constants, "HF_HUB_OFFLINE", False))
    where = "is not fully in the local cache" if is_cached else "is not in the local cache"
    if offline:
        raise ModelLoadError(
            f"{name!r} {where} and offline mode is on (HF_HUB_OFFLINE / "
            f"TRANSFORMERS_OFFLINE); {_LOCAL_ADVICE}"
        )
    endpoint = constants.ENDPOINT
    if not _hub_reachable(endpoint, HUB_PROBE_TIMEOUT_S):
        raise ModelLoadError(
            f"{name!r} {where} and cannot reach the Hugging Face Hub at {endpoint} "
            f"(no network?); {_LOCAL_ADVICE}"
        )
    return _from_pretrained(
        name, want_tokenizer, dtype, local_files_only=False, device_map=device_map
    )


def _from_pretrained(
    name: str,
    want_tokenizer: bool,
    dtype: torch.dtype | None,
    *,
    local_files_only: bool,
    device_map: Any = None,
) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    def fail(what: str, exc: Exception) -> ModelLoadError:
        return ModelLoadError(f"cannot load the {what} of {name!r}: {exc}; {_LOCAL_ADVICE}")

    try:
        config = AutoConfig.from_pretrained(name, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        raise fail("config", exc) from exc
    _check_architecture(_config_architecture(config), repr(name))
    kwargs: dict[str, Any] = {"local_files_only": local_files_only}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except OSError as exc:
        raise fail("weights", exc) from exc
    tokenizer = None
    if want_tokenizer:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
        except (OSError, ValueError):
            tokenizer = None  # the bridge works on token ids without one
    return model, tokenizer


# --------------------------------------------------------------------------- bridge


def _reloadable_tokenizer(tokenizer: Any) -> tuple[Any, tempfile.TemporaryDirectory | None]:
    """A tokenizer TransformerLens can reload by ``name_or_path`` without the network.

    The bridge reloads the tokenizer from ``name_or_path`` (to get one that adds BOS). That
    breaks for tokenizers built in memory (no path) and goes to the network for Hub ids. Such
    tokenizers are saved to a temporary directory and reloaded from there; the caller's
    tokenizer object is not modified.
    """
    if tokenizer is None:
        return None, None
    name_or_path = tokenizer.init_kwargs.get("name_or_path") or getattr(
        tokenizer, "name_or_path", ""
    )
    if name_or_path and os.path.isdir(name_or_path):
        return tokenizer, None
    from transformers import AutoTokenizer

    tmp = tempfile.TemporaryDirectory(prefix="circuits-tokenizer-")
    try:
        tokenizer.save_pretrained(tmp.name)
        reloaded = AutoTokenizer.from_pretrained(tmp.name, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        tmp.cleanup()
        raise ModelLoadError(
            f"cannot use the tokenizer {type(tokenizer).__name__}: TransformerLens reloads "
            f"tokenizers by name_or_path ({name_or_path!r}) and saving it to a local directory "
            f"failed ({exc}); load the tokenizer from a local directory instead"
        ) from exc
    reloaded.padding_side = tokenizer.padding_side
    return reloaded, tmp


def _bridge(model: Any, tokenizer: Any) -> TransformerBridge:
    """Wrap ``model`` (already architecture-checked) and switch on the edge-level hooks."""
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    architecture = _module_architecture(model)
    _check_architecture(architecture, repr(type(model).__name__))
    model_name = getattr(model.config, "_name_or_path", "") or "external"
    tokenizer, tokenizer_dir = _reloadable_tokenizer(tokenizer)
    bridge = build_bridge_from_module(
        model,
        architecture,
        hf_config=model.config,
        tokenizer=tokenizer,
        model_name=str(model_name),
    )
    for setter in ("set_use_attn_result", "set_use_split_qkv_input", "set_use_hook_mlp_in"):
        try:
            getattr(bridge, setter)(True)
        except NotImplementedError as exc:
            raise ModelLoadError(
                f"{architecture}: {setter}(True) is not supported ({exc}); its attention class "
                "has no per-head fork point, so this model cannot be used for edge-level "
                "circuit discovery"
            ) from exc
    bridge.circuit_discovery_processing = dict(PROCESSING)
    if tokenizer_dir is not None:
        # Keeps the directory the bridge's tokenizer was reloaded from alive with the bridge.
        bridge._circuit_discovery_tokenizer_dir = tokenizer_dir
    bridge.eval()
    return bridge
