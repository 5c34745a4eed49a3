"""Credentials masked out of URIs before lstm-ray logs, saves or prints them; the real URI is still used to connect.

    redact("http://alice:s3cret@mlflow:5000")             # 'http://alice:***@mlflow:5000'
    redact("cannot read 's3://b/k?secret_key=abc&region=eu'")  # "cannot read 's3://b/k?secret_key=***&region=eu'"
    split_credentials("http://alice:s3cret@mlflow:5000")  # ('http://mlflow:5000', 'alice', 's3cret')

`redact` is the one masking function: it takes a URI or any text quoting URIs (an error line, a YAML file) and
masks the password of every `scheme://user:password@` and the value of every secret-looking query option
(`secret_key=`, `password=`, `token=`, `access_key=`, `sig=`, ...). A URI without credentials comes back unchanged,
and so does one already masked. A base module: it imports nothing of lstm_ray.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["MASK", "credential_variables", "redact", "redact_values", "split_credentials"]

MASK = "***"
USERNAME_VARIABLE, PASSWORD_VARIABLE = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"  # MLflow's own
# scheme://user:password@ where the password runs to the last "@" before the path, query or fragment.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)(?P<password>[^\s/?#]*)@")
_SECRET_NAME = r"[\w.-]*(?:secret|passw|pwd|token|access_?key|credential|api_?key|signature|sas)[\w.-]*|sig|key"
_SECRET_OPTION = re.compile(rf"(?P<head>[?&](?:{_SECRET_NAME})=)(?P<value>[^&#\s'\"]*)", re.IGNORECASE)
_HTTP = ("http", "https")  # schemes whose credentials MLflow also takes from its environment variables


def redact(text: str) -> str:
    """`text` with the credentials of every URI in it replaced by `***` (see the module's docstring)."""
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@" if m["password"] else m[0], text)
    return _SECRET_OPTION.sub(lambda m: f"{m['head']}{MASK}" if m["value"] else m[0], text)


def redact_values(value: Any) -> Any:
    """`value` (a config dict, a manifest, a list) with `redact` applied to every string in it, at any depth."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_values(item) for item in value)
    return value


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(`uri` without its user and password, user, password) for an http(s) URI carrying a password; the
    password of an already masked URI counts as none (it is dropped with its user, so that MLflow's environment
    variables apply). Any other URI comes back as it is, with (None, None): a database URI keeps its password."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in _HTTP or parts.password is None:
        return uri, None, None
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit(parts._replace(netloc=host))
    if parts.password == MASK:
        return bare, None, None
    return bare, unquote(parts.username or ""), unquote(parts.password)


def credential_variables(uri: str) -> dict[str, str]:
    """MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD holding the credentials of `uri` ({} when it has none)."""
    _, user, password = split_credentials(uri)
    return {} if password is None else {USERNAME_VARIABLE: user or "", PASSWORD_VARIABLE: password}
