"""Family 1 of the trust tables: a secret is never shown and never stored, whatever form it takes.

One mechanism (`locations.redact`, `locations.refuse_secrets`) serves every layer: user-info passwords,
password-like query keys (password, sslpassword, passfile, *secret*, *token*, api_key) and libpq
connection strings. The table below gives each form to each place a location enters lstmcast (flags,
config keys, --set, LSTMCAST_ARCHIVE) and checks: exit 2, one line, the secret nowhere on stdout or
stderr (--json included), nothing written. The PostgreSQL cases train and predict for real with the
secret as ${VAR} and look for it in every file lstmcast wrote.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from lstmcast.cli.contract import Session
from lstmcast.locations import redact, redact_tree, refuse_secrets, secret_in_clear
from lstmcast.report import Reporter

from . import pg
from .conftest import TINY, assert_user_error, cli
from .trust import nowhere, snapshot, strict_json

SECRET = "hunter2x"
# (text, what must read *** in its place)
REDACTIONS = {
    "user info": ("postgresql://u:hunter2x@db/load", "postgresql://u:***@db/load"),
    "user info with an unencoded @": ("postgresql://u:hun@ter2x@db/load", "postgresql://u:***@db/load"),
    "a user name holding @": ("postgresql://me@corp:hunter2x@db/load", "postgresql://me@corp:***@db/load"),
    "query password": ("postgresql://u@db/load?password=hunter2x", "postgresql://u@db/load?password=***"),
    "query PASSWORD": ("postgresql://u@db/load?PASSWORD=hunter2x", "?PASSWORD=***"),
    "sslpassword among others": (
        "postgresql://u@db/load?sslmode=require&sslpassword=hunter2x&application_name=x",
        "?sslmode=require&sslpassword=***&application_name=x",
    ),
    "passfile": ("postgresql://u@db/load?passfile=/home/u/hunter2x", "?passfile=***"),
    "a token": ("https://h/x?access_token=hunter2x", "?access_token=***"),
    "a client secret": ("postgresql://u@db/l?client_secret=hunter2x#frag", "?client_secret=***#frag"),
    "an api key": ("postgresql://u@db/l?api_key=hunter2x", "?api_key=***"),
    "a libpq string": ("host=db user=u password=hunter2x dbname=load", "host=db user=u password=*** dbname=load"),
    "a quoted libpq value": ("host=db password='hun ter2x' dbname=load", "host=db password=*** dbname=load"),
    "spaces around =": ("host=db password = hunter2x", "password = ***"),
    "inside an error line": (
        "error: cannot connect to postgresql://u:hunter2x@db/load (query 'x'): boom — check it",
        "postgresql://u:***@db/load (query 'x')",
    ),
    "a ${VAR} placeholder too": ("postgresql://u:${PGPASSWORD}@db/load", "postgresql://u:***@db/load"),
}
UNTOUCHED = [
    "sqlite:////srv/archive/load.db",
    "postgresql://forecast@db.internal:5432/load?sslmode=require&options=-csearch_path%3Dx",
    "/srv/data/load.csv",
    "mase>1.2",
    "error: X: line 812, column 'load': 'n/a' is not a number",
]


@pytest.mark.parametrize("case", list(REDACTIONS))
def test_redact_masks_every_form(case: str) -> None:
    text, masked = REDACTIONS[case]
    shown = redact(text)
    assert masked in shown and "hunter2x" not in shown and "ter2x" not in shown, shown
    assert redact(shown) == shown  # idempotent: a line redacted twice reads the same


@pytest.mark.parametrize("text", UNTOUCHED)
def test_redact_leaves_what_holds_no_secret(text: str) -> None:
    assert redact(text) == text and secret_in_clear(text) is None


def test_every_layer_masks_through_the_one_rule(tmp_path: Path, capsys) -> None:
    """Trees (--json, records), the Reporter's log lines, the JSON error line and the error line itself."""
    tree = {"a": ["postgresql://u:hunter2x@h/d", {"b": "x?sslpassword=hunter2x"}], "n": 1.5}
    assert "hunter2x" not in json.dumps(redact_tree(tree)) and redact_tree(tree)["n"] == 1.5
    log = tmp_path / "run.log"
    reporter = Reporter(quiet=True)
    reporter.attach_log(log)
    reporter.info("reading host=db password=hunter2x dbname=x")
    reporter.close()
    assert "hunter2x" not in log.read_text() and "password=***" in log.read_text()
    session = Session()
    session.json_error("predict", True, "cannot connect to postgresql://u@h/d?password=hunter2x", 2)
    session.emit_json({"outputs": {"archive": "postgresql://u:hunter2x@h/d"}, "x": float("nan")})
    out = capsys.readouterr().out
    assert "hunter2x" not in out and all(json.loads(line) for line in out.splitlines())
    with pytest.raises(Exception, match=r"holds password=… in clear") as refused:
        refuse_secrets("postgresql://u@h/d?password=hunter2x", "--data")
    assert "hunter2x" not in str(refused.value)


# ---------------------------------------------------------------------------- the refusal table, through the CLI

FORMS = {
    "user info": f"postgresql://u:{SECRET}@127.0.0.1:9/db",
    "?password=": f"postgresql://u@127.0.0.1:9/db?password={SECRET}",
    "?sslpassword=": f"postgresql://u@127.0.0.1:9/db?sslmode=require&sslpassword={SECRET}",
    "?api_key=": f"postgresql://u@127.0.0.1:9/db?api_key={SECRET}",
    "libpq string": f"host=127.0.0.1 port=9 user=u password={SECRET} dbname=db",
}


def _config(folder: Path, **sections: dict) -> Path:
    cfg = {k: dict(v) for k, v in TINY.items()}
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    (folder / "secret.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "secret.yaml"


PLACES = {  # where a location enters lstmcast → the command line that gives it there
    "predict --data": lambda f, url: ["predict", f / "run/model.pt", "--data", url, "--query", "load"],
    "predict --archive": lambda f, url: ["predict", f / "run/model.pt", "--data", f / "series.csv", "--archive", url],
    "predict --out": lambda f, url: ["predict", f / "run/model.pt", "--data", f / "series.csv", "--out", url],
    "train: data.path": lambda f, url: ["train", _config(f, data={"path": url, "query": "load"})],
    "train: archive.url": lambda f, url: ["train", _config(f, archive={"url": url})],
    "validate --set": lambda f, url: ["validate", f / "config.yaml", "--set", f"data.path={url}"],
    "tune --storage": lambda f, url: ["tune", f / "config.yaml", "--budget", "1m", "--storage", url],
    "score --archive": lambda f, url: ["score", "--archive", url, "--actuals", f / "series.csv"],
    "score --actuals": lambda f, url: ["score", "--archive", f / "a.db", "--actuals", url, "--query", "load"],
    "promote --data": lambda f, url: ["promote", f / "run/model.pt", "--to", f / "serving", "--data", url],
    "evaluate --data": lambda f, url: ["evaluate", f / "run/model.pt", "--data", url, "--query", "load"],
    "inspect --data": lambda f, url: ["inspect", f / "run/model.pt", "--data", url, "--query", "load"],
    "init DATA": lambda f, url: ["init", url, "--target", "load", "--horizon", "12", "--query", "load"],
}
CASES = [(place, form) for place in PLACES for form in FORMS if form in ("user info", "?password=")]
CASES += [(place, form) for place in ("predict --data", "predict --archive", "train: data.path") for form in FORMS]
CASES += [(place, "libpq string") for place in ("tune --storage", "score --archive", "predict --out")]
CASES = sorted(set(CASES))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    folder = tmp_path_factory.mktemp("secrets")
    shutil.copy(tiny_run.parent / "series.csv", folder / "series.csv")
    shutil.copytree(tiny_run, folder / "run")
    cfg = {k: dict(v) for k, v in TINY.items()}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


@pytest.mark.parametrize(("place", "form"), CASES)
def test_a_secret_in_clear_is_refused_and_shown_nowhere(place: str, form: str, project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    before = snapshot(project)
    result = cli(*PLACES[place](project, FORMS[form]), "--json")
    assert_user_error(result, "in clear")
    nowhere(result, SECRET)
    assert strict_json(result.stdout)["status"] == "error"
    after = snapshot(project)
    after.pop("secret.yaml", None), before.pop("secret.yaml", None)
    assert after == before


@pytest.mark.parametrize("form", ["user info", "?sslpassword=", "libpq string"])
def test_lstmcast_archive_in_the_environment_is_held_to_the_same_rule(form: str, project: Path, monkeypatch) -> None:
    monkeypatch.setenv("LSTMCAST_ARCHIVE", FORMS[form])
    result = cli("predict", project / "run/model.pt", "--data", project / "series.csv", "--out", project / "f.csv")
    assert_user_error(result, "in clear")
    nowhere(result, SECRET)
    assert not (project / "f.csv").exists()


def test_a_secret_as_a_variable_is_accepted_and_masked(project: Path, monkeypatch) -> None:
    """${VAR} in a secret's place passes the rule, and is masked where the URL is shown (here: a refused host)."""
    monkeypatch.setenv("LSTMCAST_T_PW", SECRET)
    url = "postgresql://u:${LSTMCAST_T_PW}@127.0.0.1:9/db?sslpassword=${LSTMCAST_T_PW}"
    result = cli("predict", project / "run/model.pt", "--data", url, "--query", "load", "--json",
                 "--log-file", project / "p.log")  # fmt: skip
    assert_user_error(result, "cannot connect to postgresql://u:***@127.0.0.1:9/db?sslpassword=***")
    nowhere(result, SECRET, "${LSTMCAST_T_PW}")
    assert SECRET not in (project / "p.log").read_text()
    (project / "p.log").unlink()


# ---------------------------------------------------------------------------- PostgreSQL: real runs, every file read


@pytest.fixture(scope="module")
def readings(tiny_run: Path) -> tuple[pg.Server, str]:
    import pandas as pd

    server = pg.server()
    engine = server.engine()
    table = pg.table_name("secret_load")
    frame = pd.read_csv(tiny_run.parent / "series.csv")
    frame.assign(timestamp=pd.to_datetime(frame["timestamp"])).to_sql(table, engine, index=False)
    engine.dispose()
    return server, table


def _query_url(server: pg.Server, password: str) -> str:
    return f"postgresql://{server.user}@{server.host}:{server.port}/{server.database}?password={password}"


def test_postgres_password_as_a_query_parameter_is_refused_before_anything_is_written(readings, project: Path) -> None:
    server, table = readings
    out = project / "pg_clear"
    cfg = _config(project, data={"path": _query_url(server, server.password), "query": table})
    result = cli("train", cfg, "--out", out, "--json")
    assert_user_error(result, "password=", "in clear")
    nowhere(result, server.password)
    assert not out.exists()


@pytest.mark.slow
def test_postgres_runs_store_the_variable_never_the_password(readings, project: Path, monkeypatch) -> None:
    """train, predict --archive and a failing query with ?password=${VAR}: no file lstmcast wrote holds the secret."""
    server, table = readings
    monkeypatch.setenv("LSTMCAST_T_PG", server.password)
    url = _query_url(server, "${LSTMCAST_T_PG}")
    schema = pg.table_name("secret_archive")
    engine = server.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    archive = f"{url}&options=-csearch_path%3D{schema}"
    out = project / "pg_var"
    cfg = _config(project, data={"path": url, "query": table}, archive={"url": archive})
    trained = cli("train", cfg, "--out", out, "--json", "--log-file", project / "pg.log")
    assert trained.code == 0, trained.stderr
    done = cli("predict", out / "model.pt", "--data", url, "--out", out / "f.csv", "--json",
               "--log-file", project / "pg.log")  # fmt: skip
    assert done.code == 0, done.stderr
    assert "?password=***&options=" in strict_json(done.stdout)["outputs"]["archive"]
    failed = cli("predict", out / "model.pt", "--data", url, "--query", "SELECT nope", "--json")
    assert_user_error(failed, "password=***")
    for result in (trained, done, failed):
        nowhere(result, server.password)
    assert "${LSTMCAST_T_PG}" in (out / "config.yaml").read_text()
    for path in [*out.rglob("*"), project / "pg.log"]:
        if path.is_file():
            assert server.password.encode() not in path.read_bytes(), path
    with engine.begin() as conn:
        rows = conn.exec_driver_sql(f"SELECT * FROM {schema}.lstmcast_models").fetchall()
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()
    assert rows and all(server.password not in str(row) for row in rows)


def test_a_storage_that_cannot_be_reached_is_shown_masked(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("LSTMCAST_T_PW", SECRET)
    url = "postgresql://u:${LSTMCAST_T_PW}@127.0.0.1:9/db?sslpassword=${LSTMCAST_T_PW}"
    result = cli("tune", project / "config.yaml", "--budget", "1m", "--storage", url, "--out", project / "tu")
    assert_user_error(result, "cannot use the study storage postgresql://u:***@127.0.0.1:9/db?sslpassword=***")
    nowhere(result, SECRET)
    shutil.rmtree(project / "tu", ignore_errors=True)


@pytest.mark.slow
def test_postgres_study_storage_keeps_the_password_out_of_every_output(readings, project: Path, monkeypatch) -> None:
    pytest.importorskip("optuna")
    server, _ = readings
    monkeypatch.setenv("LSTMCAST_T_PG", server.password)
    schema = pg.table_name("secret_study")
    engine = server.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{_query_url(server, '${LSTMCAST_T_PG}')}&options=-csearch_path%3D{schema}"
    (project / "space.yaml").write_text(yaml.safe_dump({"train.epochs": [1], "model.hidden_size": [4]}))
    out = project / "study"
    done = cli("tune", project / "config.yaml", "--budget", "5m", "--trials", "1", "--space", project / "space.yaml",
               "--storage", url, "--out", out, "--json", "--log-file", project / "tune.log")  # fmt: skip
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()
    assert done.code == 0, done.stderr
    nowhere(done, server.password)
    for path in [*out.rglob("*"), project / "tune.log"]:
        if path.is_file():
            assert server.password.encode() not in path.read_bytes(), path
