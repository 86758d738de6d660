"""`make run`: the whole service on its embedded default, as one process tree.

Sets up (development master key, migrations, an operator account) and then supervises
the web server, a Celery worker and Celery beat. Ctrl-C (or SIGTERM) stops all of them:
each child runs in its own process group, which is signalled as a whole, so no worker
pool process is left behind. If any child dies, the others are stopped too.

Only this development mode (SYNTHORG_DEV=1, which the Makefile sets) may generate keys.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 15


def say(message: str) -> None:
    sys.stdout.write(f"[make run] {message}\n")
    sys.stdout.flush()


def var_dir() -> Path:
    path = Path(os.environ.get("SYNTHORG_VAR_DIR") or BASE_DIR / "var").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def manage(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=BASE_DIR, check=True, text=True, capture_output=capture,
    )


def master_key_env_name() -> str:
    """The variable the YAML names for the master key (a broken file is reported by `check`)."""
    from synthorg.config import ConfigInvalid, load

    path = os.environ.get("SYNTHORG_CONFIG") or (
        str(BASE_DIR / "synthorg.yaml") if (BASE_DIR / "synthorg.yaml").exists() else None
    )
    try:
        return load(path).integrations.secret_backend.effective_master_key_env
    except ConfigInvalid:
        return "SYNTHORG_MASTER_KEY"


def ensure_master_key(var: Path) -> None:
    env_name = master_key_env_name()
    if os.environ.get(env_name) or os.environ.get(f"{env_name}_FILE"):
        return
    from cryptography.fernet import Fernet

    path = var / "dev-master.key"
    try:
        # Exclusive create, before any process starts: two concurrent `make run`s never
        # end up with two different keys.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        say(f"WARNING: using the DEVELOPMENT master key in {path} ({env_name} is not set).")
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key())
    banner = "!" * 78
    say(banner)
    say(f"WARNING: {env_name} is not set: generated a DEVELOPMENT master key in {path}.")
    say("It encrypts every stored secret. Development only: production must set the variable.")
    say(banner)


def ensure_operator(var: Path) -> tuple[str, Path]:
    username = os.environ.get("SYNTHORG_OPERATOR_USERNAME", "operator")
    password_file = var / "operator-password"
    if not password_file.exists():
        password = secrets.token_urlsafe(18)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(password)
    manage("ensure_operator", "--username", username, "--password-file", str(password_file))
    return username, password_file


def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, cwd=BASE_DIR, start_new_session=True)
    say(f"started {name} (pid {process.pid})")
    return process


def stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    # The leader first (a Celery worker then shuts its pool down warmly), the group after.
    for process in children.values():
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, process in children.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in {STOP_GRACE_SECONDS}s; killing it")
        # Whatever is left in the group (pool children) goes too.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def main() -> int:
    if os.environ.get("SYNTHORG_DEV") != "1":
        say("refusing to start: the embedded runner is the development mode (SYNTHORG_DEV=1), "
            "use `make run`")
        return 2
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    var = var_dir()
    os.environ["SYNTHORG_VAR_DIR"] = str(var)
    ensure_master_key(var)
    try:
        manage("check", "--fail-level", "ERROR")
        manage("migrate", "--noinput", "-v", "0")
        username, password_file = ensure_operator(var)
    except subprocess.CalledProcessError as exc:
        say(f"setup failed ({' '.join(exc.cmd[1:3])}); see the message above")
        return exc.returncode or 1

    python = sys.executable
    children = {
        "web": start("web", [python, "manage.py", "runserver", f"{host}:{port}", "--noreload",
                             "--skip-checks"]),
        "worker": start("worker", [python, "-m", "celery", "-A", "synthorg", "worker",
                                   "--loglevel", "INFO", "--concurrency", "2",
                                   "--hostname", f"embedded-worker@{os.uname().nodename}"]),
        "beat": start("beat", [python, "-m", "celery", "-A", "synthorg", "beat", "--loglevel", "INFO",
                               "--pidfile", ""]),
        # The single owner of the ngrok agent; idle while integrations.tunnel.enabled is false.
        "tunnel": start("tunnel", [python, "manage.py", "tunnel", "--skip-checks"]),
    }
    shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104
    base = f"http://{shown_host}:{port}"
    say(f"admin:    {base}/admin/")
    say(f"API docs: {base}/api/docs/")
    say(f"log in as {username!r} with the password in {password_file} (reset: manage.py changepassword {username})")
    say("Ctrl-C stops everything.")

    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    exit_code = 0
    while not stopping:
        for name, process in children.items():
            if process.poll() is not None:
                say(f"{name} exited with code {process.returncode}; stopping the rest")
                exit_code = 1
                stopping = True
                break
        time.sleep(0.3)
    say("stopping web, worker, beat and the tunnel owner ...")
    stop_all(children)
    say("stopped.")
    return exit_code


if __name__ == "__main__":
    raise SystemExit(main())
