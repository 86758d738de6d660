"""Bad configuration stops every entry point with one clear line, never a traceback wall."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A="


def run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SYNTHORG_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"))}
    base.update({"SECRET_KEY": "k3y-" + "abcdefghij" * 6, "SYNTHORG_MASTER_KEY": GOOD_KEY, "SYNTHORG_VAR_DIR": str(tmp_path),
                 "SYNTHORG_ALLOW_INSECURE_HTTP": "1", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
                 # An existing static root: whitenoise warns about a missing one on stderr first.
                 "STATIC_ROOT": str(tmp_path)})
    base.update(env)
    base = {k: v for k, v in base.items() if v != "<unset>"}
    return subprocess.run(argv, cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)


MANAGE_CHECK = [sys.executable, "manage.py", "check"]


@pytest.mark.parametrize(("env", "expected"), [
    ({"SECRET_KEY": "<unset>"}, "SECRET_KEY is not set"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY is too weak"),
    ({"DATABASE_URL": "mysqlx://nope"}, "DATABASE_URL is malformed"),
    ({"DATABASE_URL": "postgres://user@host:5432"}, "DATABASE_URL is malformed: it names no database"),
    ({"DEBUG": "1"}, "DEBUG=1 is only allowed in the development mode"),
    ({"DEBUG": "ture"}, "DEBUG='ture' is not a boolean"),
    ({"REDIS_URL": "http://localhost"}, "REDIS_URL is malformed"),
])
def test_settings_problem_is_one_line(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = run(MANAGE_CHECK, tmp_path, **env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("synthorg: configuration error: ") and expected in line


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("integrations:\n  bogus: 1\n", "integrations.bogus unknown key"),
    ("integrations: [\n", "is not valid YAML"),
    ("integrations:\n  webhooks:\n    rate_limit_rpm: -1\n", "integrations.webhooks.rate_limit_rpm must be at least 0"),
])
def test_bad_yaml_stops_check_and_wsgi(tmp_path: Path, yaml_text: str, expected: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    check = run(MANAGE_CHECK, tmp_path, SYNTHORG_CONFIG=str(config))
    assert check.returncode != 0 and expected in check.stderr and "Traceback" not in check.stderr
    wsgi = run([sys.executable, "-c", "import synthorg.wsgi"], tmp_path, SYNTHORG_CONFIG=str(config))
    assert wsgi.returncode == 2 and "Traceback" not in wsgi.stderr
    assert wsgi.stderr.startswith("synthorg: synthorg.E001: ") and expected in wsgi.stderr


@pytest.mark.parametrize(("key", "expected"), [
    ("<unset>", "SYNTHORG_MASTER_KEY is not set"),
    ("not-a-fernet-key", "SYNTHORG_MASTER_KEY is malformed"),
])
def test_missing_or_malformed_master_key_stops_production(tmp_path: Path, key: str, expected: str) -> None:
    result = run([sys.executable, "-c", "import synthorg.wsgi"], tmp_path, SYNTHORG_MASTER_KEY=key)
    assert result.returncode == 2
    assert "integrations.E001" in result.stderr and expected in result.stderr
    assert "Fernet.generate_key" in result.stderr  # says how to make one
    assert "not-a-fernet-key" not in result.stderr


def test_celery_worker_refuses_broken_settings_in_one_line(tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "celery", "-A", "synthorg", "worker"], tmp_path, SECRET_KEY="<unset>")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "synthorg: configuration error: SECRET_KEY is not set" in result.stderr


def test_production_settings_pass_deploy_checks(tmp_path: Path) -> None:
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path,
                 SYNTHORG_ALLOW_INSECURE_HTTP="<unset>", ALLOWED_HOSTS="integrations.example.com")
    assert result.returncode == 0, result.stderr


def test_insecure_http_opt_in_is_warned(tmp_path: Path) -> None:
    result = run([sys.executable, "manage.py", "check", "--deploy"], tmp_path)
    assert "synthorg.W002" in result.stderr + result.stdout


# --- issue 13 §4: a bad configuration stops gunicorn, the worker and beat --------------------

GUNICORN_CONF = str(ROOT / "deploy" / "gunicorn.conf.py")
BAD_YAML = "integrations:\n  bogus: 1\n"
E001_LINE = "synthorg: synthorg.E001: Invalid configuration: integrations.bogus unknown key"


def bounded(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run until the process stops by itself; a respawn loop fails the test after 20 s."""
    config = tmp_path / "bad.yaml"
    config.write_text(BAD_YAML)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SYNTHORG_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"))}
    base.update({"SECRET_KEY": "k3y-" + "abcdefghij" * 6, "SYNTHORG_MASTER_KEY": GOOD_KEY,
                 "SYNTHORG_VAR_DIR": str(tmp_path), "SYNTHORG_ALLOW_INSECURE_HTTP": "1", "STATIC_ROOT": str(tmp_path),
                 "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "REDIS_URL": "redis://127.0.0.1:1/0",
                 "SYNTHORG_CONFIG": str(config), **env})
    try:
        return subprocess.run(argv, cwd=ROOT, env=base, capture_output=True, text=True, timeout=20,
                              start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{argv[2:5]} kept running on a broken configuration: {str(exc.stderr)[-2000:]}")


def synthorg_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("synthorg:")]


def test_gunicorn_with_the_deployment_settings_stops_with_one_line(tmp_path: Path) -> None:
    from tests.e2e.embedded import free_port

    result = bounded([sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, "synthorg.wsgi"], tmp_path,
                     GUNICORN_BIND=f"127.0.0.1:{free_port()}", WEB_CONCURRENCY="2")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = synthorg_lines(result.stderr)
    assert line.startswith(E001_LINE)
    assert "Listening at" not in result.stderr  # stopped before the socket was opened


def test_gunicorn_without_the_settings_file_halts_on_the_worker_boot_error(tmp_path: Path) -> None:
    from gunicorn.arbiter import Arbiter

    from tests.e2e.embedded import free_port

    result = bounded([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1",
                      "synthorg.wsgi"], tmp_path)
    assert result.returncode == Arbiter.WORKER_BOOT_ERROR, result.stderr[-2000:]
    assert f"exited with code {Arbiter.WORKER_BOOT_ERROR}" in result.stderr
    assert "Worker failed to boot" in result.stderr
    assert "Traceback" not in result.stderr
    assert {line.split(" Hint:")[0] for line in synthorg_lines(result.stderr)} == {
        synthorg_lines(result.stderr)[0].split(" Hint:")[0]}
    assert synthorg_lines(result.stderr)[0].startswith(E001_LINE)


@pytest.mark.parametrize("argv", [["worker", "--pool", "solo"], ["beat", "--pidfile="]], ids=["worker", "beat"])
def test_celery_worker_and_beat_stop_with_one_line(tmp_path: Path, argv: list[str]) -> None:
    result = bounded([sys.executable, "-m", "celery", "-A", "synthorg", *argv, "--loglevel", "INFO"], tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    [line] = synthorg_lines(result.stderr)
    assert line.startswith(E001_LINE)
