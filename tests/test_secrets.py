"""Credentials in URIs stay out of everything lstm-ray logs, saves or prints (`lstm_ray/redaction.py`).

A real sweep logs to a real MLflow server through http://USER:PASSWORD@127.0.0.1:PORT (a server without auth
ignores the credentials) and reads its data from file://...?token=SECRET; neither secret may then appear in any
file under the sweep's storage folder or the server's store, in any run's params or tags, or in what the command
printed. The job a `lstm-ray submit` would send is checked the same way, without a cluster.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import yaml
from cli_runs import cli, finish
from conftest import TINY
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient
from mlflow_server_process import ServerProcess

from lstm_ray.cli import main as lstm_ray_cli
from lstm_ray.cluster.jobs import META_TRACKING_URI, check_overrides_hold_no_secret, job_request
from lstm_ray.config import load_config
from lstm_ray.data.builtin import load_builtin
from lstm_ray.data.sources import read_table
from lstm_ray.errors import ConfigError, DataError
from lstm_ray.redaction import MASK, PASSWORD_VARIABLE, USERNAME_VARIABLE, redact, redact_values, split_credentials

NEEDS_ENCODING = "@:/?#[]% &+=!$'\"()*,;<>\\^`{|}~é"
names = st.text(alphabet="abcdefghij0123" + NEEDS_ENCODING, min_size=1, max_size=12)  # no "PW" in a user name
hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9]{0,6}){0,2}", fullmatch=True)
paths = st.from_regex(r"(/[a-z0-9_.-]{1,8}){0,3}", fullmatch=True)
schemes = st.sampled_from(["http", "https", "postgresql+psycopg", "mysql", "s3", "gs"])
# A password starts with "PW" and the other parts are lower case, so it can only show up where it leaked.
passwords = st.builds(lambda core, rest: f"PW{core}{rest}", st.from_regex(r"[0-9a-f]{8}", fullmatch=True),
                      st.text(alphabet=NEEDS_ENCODING + "abcXYZ019", max_size=12))  # fmt: skip
secret_options = st.sampled_from(
    ["secret_key", "password", "token", "access_key", "aws_secret_access_key", "sig", "sas", "api_key", "passwd"]
)


def with_credentials(scheme: str, user: str, password: str, host: str, port: int, path: str) -> str:
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}{path}"


@given(schemes, names, passwords, hosts, st.integers(1, 65535), paths)
def test_a_masked_uri_keeps_everything_but_the_password(scheme, user, password, host, port, path):
    uri = with_credentials(scheme, user, password, host, port, path)
    masked, original = urlsplit(redact(uri)), urlsplit(uri)
    assert password not in redact(uri) and quote(password, safe="") not in redact(uri)
    assert masked.password == MASK and masked.username == original.username
    assert (masked.scheme, masked.hostname, masked.port, masked.path) == (scheme, host, port, path)
    assert redact(redact(uri)) == redact(uri)
    line = f"cannot open {uri!r}: refused by {uri}"  # an error line quoting the URI twice
    assert "PW" not in redact(line) and redact(line).count(MASK) == 2


@given(schemes, hosts, st.integers(1, 65535), paths, st.sampled_from(["", "?region=eu&scheme=http"]))
def test_a_uri_without_credentials_is_unchanged(scheme, host, port, path, query):
    uri = f"{scheme}://{host}:{port}{path}{query}"
    assert redact(uri) == uri and split_credentials(uri) == (uri, None, None)


@given(secret_options, st.booleans(), passwords, hosts, paths)
def test_secret_query_options_are_masked(option, upper, secret, host, path):
    name = option.upper() if upper else option
    uri = f"s3://{host}{path}?region=eu&{name}={quote(secret, safe='')}&scheme=http"
    assert redact(uri) == f"s3://{host}{path}?region=eu&{name}={MASK}&scheme=http"


@given(st.sampled_from(["http", "https"]), names, passwords, hosts, st.integers(1, 65535), paths)
def test_split_credentials_gives_the_bare_uri_and_the_decoded_credentials(scheme, user, password, host, port, path):
    uri = with_credentials(scheme, user, password, host, port, path)
    bare = f"{scheme}://{host}:{port}{path}"
    assert split_credentials(uri) == (bare, user, password)
    assert split_credentials(redact(uri)) == (bare, None, None)  # a saved (masked) URI falls back to the variables


@given(names, passwords, secret_options, passwords)
def test_a_data_source_error_line_quotes_no_credential(user, password, option, secret):
    source = f"s3://{quote(user, safe='')}:{quote(password, safe='')}@bucket/k.csv?{option}={quote(secret)}&bogus=1"
    with pytest.raises(DataError) as raised:
        read_table(source)
    assert "PW" not in str(raised.value) and "data.source" in str(raised.value)


@given(passwords)
def test_redact_values_masks_every_string_at_any_depth(password):
    uri = f"http://u:{quote(password, safe='')}@h:1"
    saved = redact_values({"a": [uri, {"b": (uri, 3)}], "c": 1.5})
    assert "PW" not in repr(saved) and saved["c"] == 1.5 and saved["a"][1]["b"][1] == 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names, passwords, st.sampled_from(["data.source", "model.init_from"]), secret_options, passwords)
def test_submit_keeps_the_tracking_password_in_the_job_environment_only(tmp_path, user, password, key, option, other):
    uri = f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:5000"
    raw = TINY | {"tracking": {"uri": uri}, "storage": {"path": "/srv/results"}}
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    config = folder / "sweep.yaml"
    config.write_text(yaml.safe_dump(raw, width=10_000))
    overrides = [f"tracking.uri={uri}", "train.max_epochs=1"]
    shipped = folder / "job"
    shipped.mkdir()
    request = job_request(config, load_config(config, overrides), overrides, shipped, "tune", ())

    env = request["runtime_env"]["env_vars"]
    assert (env[USERNAME_VARIABLE], env[PASSWORD_VARIABLE]) == (user, password)
    visible = repr({k: v for k, v in request.items() if k != "runtime_env"}) + (shipped / "sweep.yaml").read_text()
    assert "PW" not in visible and request["metadata"][META_TRACKING_URI] == redact(uri)
    # What the driver on the head reads: the masked URI, which connects to the same server with the job's variables.
    shipped_uri = yaml.safe_load((shipped / "sweep.yaml").read_text())["tracking"]["uri"]
    assert split_credentials(shipped_uri) == ("http://127.0.0.1:5000", None, None)
    with pytest.raises(ConfigError, match=key) as raised:  # no other credential may ride in the entrypoint
        check_overrides_hold_no_secret([f"{key}=s3://bucket/x.csv?{option}={quote(other)}"])
    assert "PW" not in str(raised.value)


@pytest.fixture
def server(tmp_path):
    process = ServerProcess(tmp_path / "server")
    process.start()
    yield process
    process.stop()


@pytest.mark.slow
@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(user=names, password=passwords, token=passwords)
def test_a_sweep_keeps_no_credential_anywhere(server, tmp_path, user, password, token):
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    data = root / "co2.csv"
    load_builtin("co2").to_pandas().to_csv(data, index=False)
    uri = with_credentials("http", user, password, "127.0.0.1", server.port, "")
    raw = TINY | {
        "name": "secrets",
        "data": TINY["data"] | {"source": f"file://{data}?token={quote(token, safe='')}"},
        "train": TINY["train"] | {"max_epochs": 1},
        "search": {"num_samples": 1, "space": {}},
        "tracking": {"uri": uri, "checkpoints": "all"},
        "storage": {"path": str(root / "results")},
    }
    config = root / "secrets.yaml"
    config.write_text(yaml.safe_dump(raw, width=10_000))
    env = {k: v for k, v in os.environ.items() if k not in (USERNAME_VARIABLE, PASSWORD_VARIABLE)}

    out = finish(cli("tune", str(config), cwd=root, env=env), timeout=600)

    assert "Best trial" in out, out
    secrets = [password, quote(password, safe=""), token, quote(token, safe="")]
    assert not [s for s in secrets if s in out], out
    assert "MLFLOW_TRACKING_PASSWORD" in out  # the one warning line
    files = [*(root / "results").rglob("*"), *server.root.rglob("*")]
    assert not [str(f.relative_to(tmp_path)) for f in files if _holds(f, secrets)]
    client = MlflowClient(server.url)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 2  # the parent and its one trial: the real URI reached the server
    logged = repr([(r.data.params, r.data.tags) for r in runs])
    assert not [s for s in secrets if s in logged]
    parent = next(r for r in runs if "tracking.uri" in r.data.params)
    assert parent.data.params["tracking.uri"] == redact(uri)


def _holds(path: Path, secrets: list[str]) -> bool:
    if not path.is_file():
        return False
    content = path.read_bytes()
    return any(s.encode() in content for s in secrets)


@settings(deadline=None)
@given(names, passwords, hosts, st.integers(1, 65535))
def test_a_client_connects_without_the_uri_password_which_goes_to_mlflows_variables(user, password, host, port):
    from lstm_ray.tracking.runs import credentials_to_environment

    uri = with_credentials("https", user, password, host, port, "/mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(USERNAME_VARIABLE, raising=False)
        patch.delenv(PASSWORD_VARIABLE, raising=False)
        assert credentials_to_environment(uri) == f"https://{host}:{port}/mlflow"
        assert (os.environ[USERNAME_VARIABLE], os.environ[PASSWORD_VARIABLE]) == (user, password)
        patch.setenv(PASSWORD_VARIABLE, "set-by-the-user")  # a saved (masked) URI leaves the variables alone
        assert credentials_to_environment(redact(uri)) == f"https://{host}:{port}/mlflow"
        assert os.environ[PASSWORD_VARIABLE] == "set-by-the-user"


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=names, password=passwords, port=st.integers(1, 65535))
def test_validate_says_where_credentials_belong_and_prints_none(user, password, port, capsys):
    uri = with_credentials("http", user, password, "127.0.0.1", port, "")
    quickstart = str(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
    assert lstm_ray_cli(["validate", quickstart, "--set", f"tracking.uri={uri}"]) == 0
    out, err = capsys.readouterr()
    assert "tracking.uri: its credentials are masked" in out and "MLFLOW_TRACKING_PASSWORD" in out
    assert "PW" not in out + err
