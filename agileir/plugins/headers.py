"""TensorRT headers for building the plugin library when no SDK is installed: NVIDIA's open-source TensorRT
repository (github NVIDIA/TensorRT, Apache-2.0) publishes the public ``include/`` of each release, and the plugin
needs only ``NvInferRuntime.h`` and what it includes (eight files).

They are fetched at build time, file by file, from a pinned tag, and each file must have the pinned sha256: a
file that differs is refused and nothing is kept. Nothing is vendored into the project. The fetched folder is
written atomically (a temporary folder renamed into place), so a reader never sees half a set.

``AGILEIR_TRT_HEADERS_URL`` replaces the base URL (a mirror, or a ``file://`` folder); ``{tag}`` in it is
replaced by the tag.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import urllib.request
from pathlib import Path

ENV_HEADERS_URL = "AGILEIR_TRT_HEADERS_URL"
HEADERS_URL = "https://raw.githubusercontent.com/NVIDIA/TensorRT/v{tag}/include/"

# sha256 of include/<file> at each tag: NvInferRuntime.h and its includes (g++ -M), nothing else.
PINNED_HEADERS: dict[str, dict[str, str]] = {
    "10.13.3": {
        "NvInferImpl.h": "73cbf708a2f8a57967cb86e97fc38eed096df11c47b6d76090cbd8fcc21993ea",
        "NvInferLegacyDims.h": "3e10fe5b85545f2e956e6935271badf0b1c72553b698000a61d46d69c5d53030",
        "NvInferPluginBase.h": "774e457b2e80f27502ea1aed8132949f6e0788251b5374948e1bfdc9de9fb0ee",
        "NvInferRuntime.h": "c6ef78bbd8d12c8affa22961d136951e87e7b4c2a405fe44aef40b35264e3686",
        "NvInferRuntimeBase.h": "cf979038f28817ebee3b2899322aadda4566dafcd8a060c18bf2bdff511dfc8a",
        "NvInferRuntimeCommon.h": "9461c9d07403c5dd1f8a6dea17fa5c3fe5cef7c4290c6768370a1d8139d4ac5d",
        "NvInferRuntimePlugin.h": "d337b34b7b7efc1c65ba3405a6551389063669cb0c51704f91578b5f817999fc",
        "NvInferVersion.h": "b80217d27f09a25be0fb753a7aa832834f2def9cd91d2a5562d278b76c5388c2",
    },
    "11.1": {
        "NvInferImpl.h": "c6acddec7e286c18e9cd08511553c2015f99c487ca25717790e54e30c18ade79",
        "NvInferLegacyDims.h": "3e10fe5b85545f2e956e6935271badf0b1c72553b698000a61d46d69c5d53030",
        "NvInferPluginBase.h": "759f354754e64bf4d1e68d7df796c155c46f8a27541bf1912ba13e79a5a26fc2",
        "NvInferRuntime.h": "e78c2d49516a66f726864904386534f63eacf0ad75a6dfdde7dfa70adf39f797",
        "NvInferRuntimeBase.h": "ec38759dbf8a5538c4cd30890f1764658bc2dcec87e95ac18148e476cbe1671b",
        "NvInferRuntimeCommon.h": "eff4c0251cb4813bbc7fe34c6b28fdb6c08734c27ae53b07974d2557bf1431be",
        "NvInferRuntimePlugin.h": "d4db4236da9c03e543949247a75478b5ce68fc84eb30cd15b35081b94c8d8391",
        "NvInferVersion.h": "8648df4851fb2df1a15d7dfdae6454428c4b119055f65f6a98de8ff806977b2e",
    },
}


class HeaderFetchError(RuntimeError):
    """The pinned headers could not be fetched, or a fetched file is not the pinned one."""


def header_tag(flavour: str, tensorrt_version: str) -> str:
    """The pinned tag whose headers build the plugin for a TensorRT flavour / version. TensorRT-RTX 1.x uses the
    IPluginV3 interfaces of TensorRT 10.x (a library built against the 10.13.3 headers loads and builds there)."""
    major = int(str(tensorrt_version).split(".")[0] or 0)
    if flavour == "rtx" or major == 10:
        return "10.13.3"
    if major == 11:
        return "11.1"
    raise HeaderFetchError(f"no pinned TensorRT headers for TensorRT {tensorrt_version}: set AGILEIR_TRT_INCLUDE "
                           "to the include/ folder of that release")


def headers_url(tag: str) -> str:
    base = os.environ.get(ENV_HEADERS_URL) or HEADERS_URL
    base = base.replace("{tag}", tag)
    return base if base.endswith("/") else base + "/"


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (https or a file:// mirror)
            return response.read()
    except (OSError, ValueError) as e:
        raise HeaderFetchError(f"cannot fetch {url}: {e}") from None


def fetch_headers(tag: str, dest: str | os.PathLike, base_url: str | None = None) -> Path:
    """Fetch the pinned headers of ``tag`` into ``dest`` (an include folder) and return it; an existing complete
    ``dest`` is returned as is. Raises HeaderFetchError when a file cannot be fetched or its sha256 is not the
    pinned one; then ``dest`` is not created."""
    if tag not in PINNED_HEADERS:
        raise HeaderFetchError(f"no pinned TensorRT headers for tag {tag} (pinned: {', '.join(PINNED_HEADERS)})")
    dest = Path(dest)
    pinned = PINNED_HEADERS[tag]
    if all((dest / name).is_file() for name in pinned):
        return dest
    base = base_url or headers_url(tag)
    staging = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.fetching"
    staging.mkdir(parents=True)
    try:
        for name, sha256 in pinned.items():
            data = _download(base + name)
            got = hashlib.sha256(data).hexdigest()
            if got != sha256:
                raise HeaderFetchError(f"{base + name} has sha256 {got[:16]}..., not the pinned {sha256[:16]}...: "
                                       "refused (set AGILEIR_TRT_INCLUDE to headers you trust)")
            (staging / name).write_bytes(data)
        if dest.exists():  # incomplete from an older layout: replaced
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


__all__ = ["ENV_HEADERS_URL", "HEADERS_URL", "PINNED_HEADERS", "HeaderFetchError", "fetch_headers", "header_tag",
           "headers_url"]
