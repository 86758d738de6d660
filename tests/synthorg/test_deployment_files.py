"""docker-compose.yml cannot run here (no Docker engine): check it against the README instead."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
README = (ROOT / "README.md").read_text()


def test_compose_has_the_six_services_with_health_checks() -> None:
    # Services under a profile (`monitoring`: Prometheus, Grafana) start only when asked for.
    services = {name: service for name, service in COMPOSE["services"].items() if not service.get("profiles")}
    assert set(services) == {"postgres", "redis", "nginx", "web", "worker", "beat"}
    assert all("healthcheck" in service for service in services.values())


def test_compose_commands_are_the_readme_commands() -> None:
    for name in ("web", "worker", "beat"):
        assert f"| `{name}` | `{COMPOSE['services'][name]['command']}` |" in README


def test_compose_environment_is_documented_in_readme() -> None:
    env = COMPOSE["services"]["web"]["environment"]
    for name in env:
        assert f"`{name}`" in README, name
    assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")


def test_compose_requires_the_secrets_instead_of_defaulting_them() -> None:
    env = COMPOSE["services"]["web"]["environment"]
    assert re.fullmatch(r"\$\{SECRET_KEY:\?.+\}", env["SECRET_KEY"])
    assert re.fullmatch(r"\$\{SYNTHORG_MASTER_KEY:\?.+\}", env["SYNTHORG_MASTER_KEY"])


def test_dockerfile_collects_static_and_runs_gunicorn_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "collectstatic --noinput" in dockerfile
    assert "USER app" in dockerfile
    assert '"gunicorn", "-c", "deploy/gunicorn.conf.py", "synthorg.wsgi"' in dockerfile


# --- the front door (issue 13 §3) ------------------------------------------------------------

NGINX_TEMPLATE = (ROOT / "deploy" / "nginx.conf").read_text()
NGINX_DIRECTIVES = "\n".join(line.split("#", 1)[0] for line in NGINX_TEMPLATE.splitlines())


def test_only_nginx_is_published_and_it_fronts_web() -> None:
    services = COMPOSE["services"]
    published = {name for name, service in services.items() if service.get("ports") and not service.get("profiles")}
    assert published == {"nginx"}
    # The monitoring profile's consoles listen on the host's loopback only.
    assert all(port.startswith("127.0.0.1:") for service in services.values() if service.get("profiles")
               for port in service.get("ports", []))
    nginx = services["nginx"]
    assert re.fullmatch(r"nginx:1\.\d+(\.\d+)?-alpine", nginx["image"])
    assert "./deploy/nginx.conf:/etc/nginx/synthorg/nginx.conf:ro" in nginx["volumes"]
    assert nginx["environment"]["SYNTHORG_UPSTREAM"] == "web:8000"
    assert nginx["depends_on"]["web"]["condition"] == "service_healthy"
    # envsubst is told exactly the template's placeholders, so nginx's own $variables survive.
    command = " ".join(nginx["command"])
    placeholders = set(re.findall(r"\$\{(\w+)\}", NGINX_TEMPLATE))
    assert placeholders == {"SYNTHORG_LISTEN", "SYNTHORG_UPSTREAM", "SYNTHORG_MAX_PAYLOAD_BYTES"}
    assert set(re.findall(r"\$\$\{(\w+)\}", command)) == placeholders
    assert set(nginx["environment"]) == placeholders


def test_nginx_buffers_and_bounds_slow_clients() -> None:
    for directive in ("proxy_request_buffering on;", "proxy_buffering on;", "client_body_timeout ",
                      "client_header_timeout ", "send_timeout ", "keepalive_timeout ", "keepalive_requests ",
                      "reset_timedout_connection on;",
                      "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                      "proxy_set_header X-Real-IP $remote_addr;", "proxy_set_header X-Forwarded-Proto $scheme;",
                      "proxy_set_header X-Request-ID $synthorg_request_id;"):
        assert directive in NGINX_DIRECTIVES, directive


def test_nginx_body_limit_is_the_receivers_payload_limit() -> None:
    from synthorg.config import WebhooksConfig

    assert "client_max_body_size ${SYNTHORG_MAX_PAYLOAD_BYTES};" in NGINX_DIRECTIVES
    default = COMPOSE["services"]["nginx"]["environment"]["SYNTHORG_MAX_PAYLOAD_BYTES"]
    assert default == f"${{SYNTHORG_MAX_PAYLOAD_BYTES:-{WebhooksConfig().max_payload_bytes}}}"


def test_web_trusts_the_compose_network_as_its_proxy() -> None:
    from synthorg.config import load

    env = COMPOSE["services"]["web"]["environment"]
    default = re.fullmatch(r"\$\{SYNTHORG_TRUSTED_PROXIES:-(.+)\}", env["SYNTHORG_CFG__TRUSTED_PROXIES"]).group(1)
    config = load(None, environ={"SYNTHORG_CFG__TRUSTED_PROXIES": default})
    assert config.integrations.trusted_proxies == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


def test_gunicorn_settings_file() -> None:
    import runpy

    settings = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert settings["bind"] == ["0.0.0.0:8000"] and settings["workers"] == 4
    assert settings["timeout"] > settings["graceful_timeout"] > 0
    assert settings["max_requests"] > 0 and 0 < settings["max_requests_jitter"] < settings["max_requests"]
    assert settings["keepalive"] > 4  # above nginx's upstream keepalive_timeout 4s
    assert "%({x-request-id}o)s" in settings["access_log_format"]
    assert callable(settings["on_starting"])
    assert "exec gunicorn -c deploy/gunicorn.conf.py synthorg.wsgi" in COMPOSE["services"]["web"]["command"]


def test_readme_names_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
