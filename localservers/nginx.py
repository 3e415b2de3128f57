"""A project-managed nginx in front of the web server: it reads every request whole (headers
and body, with timeouts and a size limit per route) before the web server sees it, so slow or
oversized clients cost an nginx connection, never a gunicorn thread.

One template (`render_config`) serves `serve`'s managed nginx and docker/nginx.conf
(`python -m localservers.nginx > docker/nginx.conf`; a test checks the file is current).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass, replace
from pathlib import Path

from config import STATIC_PREFIXES, Settings
from data.errors import OneScreenError
from localservers.base import LocalServer

NGINX = "nginx"
UPSTREAM = "onescreen_app"
# nginx reads the whole response, then the proxy waits this much longer than gunicorn would let
# a request run, so a slow callback ends with gunicorn's answer rather than the proxy's 504
READ_TIMEOUT_MARGIN_S = 15
# idle keep-alive connections cost nginx ~1 KB each: thousands of slow clients cost nothing
WORKER_CONNECTIONS = 8192
# a web server that failed a request is not tried again for this long
FAIL_REST_S = 5
# the scripts and styles nginx keeps (web.session lets them through without a session)
STATIC_CACHE = "onescreen_static"
STATIC_KEEP = "10m"

# nginx's own refusals: status, machine code, sentence (plain text; JSON under /api/)
ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "the request could not be read"),
    408: ("request_timeout", "the request was not sent in time"),
    413: ("body_too_large", "the request body is larger than this address accepts"),
    429: ("too_many_connections", "too many connections from your address; try again shortly"),
    500: ("proxy_error", "the proxy could not handle the request"),
    502: ("unavailable", "the dashboard is not answering; try again shortly"),
    503: ("unavailable", "the dashboard is not answering; try again shortly"),
    504: ("upstream_timeout", "the dashboard took too long to answer"),
}


class ProxyError(OneScreenError):
    """The managed nginx cannot be started; the message says why and what to do."""


@dataclass(frozen=True)
class ProxySite:
    """Everything the proxy's configuration depends on, wherever it runs."""

    listen: str  # nginx `listen` argument: "127.0.0.1:8050", "8080"
    # the web servers: ("127.0.0.1:41234", "127.0.0.1:41235"), ("app:8050",)
    upstreams: tuple[str, ...]
    body_limits: tuple[tuple[str, int], ...]  # route prefix → bytes ("" = every other route)
    client_timeout_s: float
    read_timeout_s: float
    connections_per_ip: int
    # proxies in front of this one whose X-Forwarded-For entries the app also believes
    outer_proxies: int
    temp_dir: str
    pid_file: str
    error_log: str
    user: str | None  # the worker processes' account (a line only when root starts nginx)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        listen: str,
        upstreams: tuple[str, ...],
        files: str,
        user: str | None,
    ) -> ProxySite:
        """The site `settings` describe, its temp files, pid and log under `files`."""
        return cls(
            listen=listen,
            upstreams=upstreams,
            body_limits=tuple(sorted(settings.body_limits().items())),
            client_timeout_s=settings.proxy_client_timeout_seconds,
            read_timeout_s=settings.web_timeout_seconds + READ_TIMEOUT_MARGIN_S,
            connections_per_ip=settings.proxy_connections_per_ip,
            outer_proxies=settings.trusted_proxies,
            temp_dir=f"{files}/tmp",
            pid_file=f"{files}/nginx.pid",
            error_log=f"{files}/error.log",
            user=user,
        )


def error_body(status: int, *, json_body: bool) -> str:
    """The body nginx answers its own refusal `status` with (JSON for the API)."""
    code, message = ERRORS[status]
    if json_body:
        return json.dumps({"error": {"code": code, "message": message}})
    return f"{status} {message}\n"


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _error_locations() -> list[str]:
    lines = []
    for status in ERRORS:
        for flavour, json_body in (("plain", False), ("json", True)):
            kind = "application/json" if json_body else "text/plain"
            body = _quoted(error_body(status, json_body=json_body))
            lines += [
                f"    location @{flavour}_{status} {{",
                f"      default_type {kind};",
                f"      return {status} {body};",
                "    }",
            ]
    return lines


def _error_pages(flavour: str, indent: str) -> list[str]:
    return [f"{indent}error_page {status} @{flavour}_{status};" for status in ERRORS]


def _locations(site: ProxySite) -> list[str]:
    """One location per limited route prefix, /api/ answering its refusals in JSON."""
    limits = dict(site.body_limits)
    prefixes = sorted({*limits, "/api/"} - {""})
    lines = []
    for prefix in prefixes:
        lines.append(f"    location {prefix} {{")
        if prefix in limits:
            lines.append(f"      client_max_body_size {limits[prefix]};")
        if prefix.startswith("/api/"):
            lines += _error_pages("json", "      ")
        lines += [f"      proxy_pass http://{UPSTREAM};", "    }"]
    return lines


def _forwarding(site: ProxySite) -> list[str]:
    """Headers that tell the app who the client is: overwritten, never passed on from the
    client, unless proxies the app trusts stand in front (then appended to theirs)."""
    if site.outer_proxies:
        client = "$proxy_add_x_forwarded_for"
        proto = "$onescreen_forwarded_proto"
    else:
        client, proto = "$remote_addr", "$scheme"
    return [
        "  proxy_set_header Host $http_host;",
        f"  proxy_set_header X-Forwarded-For {client};",
        f"  proxy_set_header X-Forwarded-Proto {proto};",
        "  proxy_set_header X-Forwarded-Host $http_host;",
        '  proxy_set_header Forwarded "";',
        # keep-alive to the web server: HTTP/1.1 without the client's Connection header
        '  proxy_set_header Connection "";',
    ]


def render_config(site: ProxySite) -> str:
    """nginx.conf for `site`."""
    timeout = f"{site.client_timeout_s:g}s"
    outer = (
        ["  map $http_x_forwarded_proto $onescreen_forwarded_proto {",
         "    default $http_x_forwarded_proto;", '    "" $scheme;', "  }"]
        if site.outer_proxies
        else []
    )  # fmt: skip
    lines = [
        "# Written by OneScreen from localservers/nginx.py's template: do not edit.",
        *([f"user {site.user};"] if site.user else []),
        "worker_processes auto;",
        f"worker_rlimit_nofile {2 * WORKER_CONNECTIONS};",
        "daemon off;",
        f"pid {site.pid_file};",
        f"error_log {site.error_log} warn;",
        f"events {{ worker_connections {WORKER_CONNECTIONS}; }}",
        "http {",
        "  server_tokens off;",
        "  access_log off;",
        *(
            f"  {kind}_temp_path {site.temp_dir}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
        # a client must send its headers, each piece of its body and read each piece of the
        # answer within this time; one that does not frees its connection and its memory
        f"  client_header_timeout {timeout};",
        f"  client_body_timeout {timeout};",
        f"  send_timeout {timeout};",
        "  reset_timedout_connection on;",
        # longer than a dashboard's refresh period, as gunicorn's keep-alive
        "  keepalive_timeout 75s;",
        "  keepalive_requests 1000;",
        # callbacks fit in memory; larger bodies (ingest batches) wait in a temp file
        "  client_body_buffer_size 64k;",
        "  limit_conn_zone $binary_remote_addr zone=onescreen_per_address:10m;",
        f"  limit_conn onescreen_per_address {site.connections_per_ip};",
        "  limit_conn_status 429;",
        # the web server gets a request only once its body is here, and hands its answer over
        # at once, whatever the client's speed
        "  proxy_request_buffering on;",
        "  proxy_buffering on;",
        "  proxy_buffer_size 16k;",
        "  proxy_buffers 32 16k;",
        "  proxy_busy_buffers_size 64k;",
        "  proxy_http_version 1.1;",
        "  proxy_connect_timeout 5s;",
        f"  proxy_send_timeout {site.read_timeout_s:g}s;",
        f"  proxy_read_timeout {site.read_timeout_s:g}s;",
        *outer,
        *_forwarding(site),
        # the app's answers are JSON, scripts and styles; geobuf comes gzip'd and passes as is;
        # Dash and Flask type scripts from the system's mime.types: text/javascript on Debian
        # (plotly.min.js went out whole, 4.8 MB, under application/javascript alone)
        "  gzip on;",
        "  gzip_proxied any;",
        "  gzip_comp_level 5;",
        "  gzip_min_length 1024;",
        "  gzip_vary on;",
        "  gzip_types application/json application/javascript text/javascript text/css"
        " text/plain application/geo+json image/svg+xml;",
        *_upstream(site),
        _static_cache(site),
        "  server {",
        f"    listen {site.listen};",
        f"    client_max_body_size {dict(site.body_limits).get('', 16384)};",
        *_error_pages("plain", "    "),
        "    location / {",
        f"      proxy_pass http://{UPSTREAM};",
        "    }",
        *_locations(site),
        *_static_locations(),
        *_error_locations(),
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _static_cache(site: ProxySite) -> str:
    """Where nginx keeps the pages' scripts and styles (Dash's bundles, ~5 MB a fresh browser
    fetches) once fetched: a fresh visitor costs the web servers no Python for them."""
    return (
        f"  proxy_cache_path {site.temp_dir}/static levels=1:2 keys_zone={STATIC_CACHE}:4m"
        " max_size=256m inactive=7d use_temp_path=off;"
    )


def _static_locations() -> list[str]:
    """The bundle and asset routes through the static cache. Their URLs carry the file's
    version (Dash fingerprints them), so a kept copy is the right one; an asset without its
    version is kept only minutes."""
    lines = []
    for prefix in STATIC_PREFIXES:
        lines += [
            f"    location {prefix} {{",
            f"      proxy_pass http://{UPSTREAM};",
            f"      proxy_cache {STATIC_CACHE};",
            "      proxy_cache_key $uri$is_args$args;",
            # Flask answers assets with no-cache (revalidate): nginx keeps them regardless
            "      proxy_ignore_headers Cache-Control Expires Set-Cookie;",
            f"      proxy_cache_valid 200 {STATIC_KEEP};",
            "      proxy_cache_lock on;",
            "      add_header X-Cache $upstream_cache_status always;",
            "    }",
        ]
    return lines


def _upstream(site: ProxySite) -> list[str]:
    """The web servers: one that refuses or drops connections rests a few seconds, and a
    request it never received goes to the next (nginx retries no POST a server has seen)."""
    return [
        f"  upstream {UPSTREAM} {{",
        *(f"    server {up} max_fails=1 fail_timeout={FAIL_REST_S}s;" for up in site.upstreams),
        "    keepalive 32;",
        "  }",
        "  proxy_next_upstream error timeout;",
        f"  proxy_next_upstream_tries {max(len(site.upstreams), 1)};",
    ]


def compose_config() -> str:
    """docker/nginx.conf: the default settings' site in front of the compose file's `app`."""
    settings = Settings.model_construct()  # the defaults, whatever this machine's environment
    site = ProxySite.from_settings(
        settings, listen="8080", upstreams=("app:8050",), files="/tmp", user=None
    )
    # the container runs as its unprivileged user, its log is the container's output
    return render_config(replace(site, temp_dir="/tmp", error_log="stderr"))


@dataclass(eq=False)
class ManagedNginx(LocalServer):
    """Handle on the nginx at `root` (config, temp files, pid, log) on `host`:`port`,
    forwarding to the web servers at 127.0.0.1:`upstream_ports`."""

    root: Path
    port: int
    host: str
    upstream_ports: tuple[int, ...]
    settings: Settings
    binary: str = NGINX
    # Debian's account for web servers: nginx's worker processes run as it when root starts it
    os_user: str = "www-data"

    kind = "nginx"
    port_variable = "ONESCREEN_PORT"
    url_variable = "ONESCREEN_PROXY"
    error = ProxyError

    @property
    def conf_file(self) -> Path:
        """The nginx.conf written on every start."""
        return self.root / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        """The file nginx writes its master's pid to."""
        return self.root / "nginx.pid"

    @property
    def log_file(self) -> Path:
        """nginx's error log."""
        return self.root / "error.log"

    @property
    def output_file(self) -> Path:
        """Where nginx's stdout and stderr go."""
        return self.root / "nginx.out"

    @staticmethod
    def installed() -> bool:
        """Whether an nginx binary is on this machine."""
        return _binary(NGINX) is not None

    def site(self, *, user: str | None) -> ProxySite:
        """What this nginx's configuration says."""
        return ProxySite.from_settings(
            self.settings,
            listen=f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}",
            upstreams=tuple(f"127.0.0.1:{port}" for port in self.upstream_ports),
            files=str(self.root),
            user=user,
        )

    def restart(self) -> None:
        """Stop ours if it runs (its web server has moved), then start it with a new config."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.stop()
        self.start_if_stopped()

    def port_taken_message(self) -> str:
        """What to tell a user whose port some other program holds."""
        return f"port {self.port} is already taken by another program; choose another with --port"

    def _ready(self) -> bool:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        try:
            with socket.create_connection((host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _start(self) -> None:
        binary = _binary(self.binary)
        if binary is None:
            raise ProxyError(
                "nginx is not installed (`apt-get install nginx-light`, or run "
                "scripts/install-system-deps.sh), or set ONESCREEN_PROXY=none to serve without it."
            )
        temp = self.root / "tmp"
        temp.mkdir(exist_ok=True)
        user = None
        if os.geteuid() == 0:
            account = self.owner()
            # nginx's workers never run as root: without the account, its default (nobody)
            user = f"{account.pw_name} {_group_name(account.pw_gid)}" if account else "nobody"
            self.give_to_owner(temp)
            self.check_writable_by_owner(temp)
        self.conf_file.write_text(render_config(self.site(user=user)))
        argv = [binary, "-e", str(self.log_file), "-c", str(self.conf_file)]
        self._spawn(argv, output=self.output_file)

    def _log_files(self) -> tuple[Path, ...]:
        return (self.output_file, self.log_file)


def _binary(name: str) -> str | None:
    # Debian puts nginx in /usr/sbin, which a normal user's PATH may lack
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def managed_nginx(
    settings: Settings, *, host: str, port: int, upstream_ports: tuple[int, ...]
) -> ManagedNginx:
    """The managed nginx for the web servers on `upstream_ports`, public on `host`:`port`."""
    from data.engine import embedded_data_dir

    # one per public port, as Redis: servers on different ports never share or stop one
    root = embedded_data_dir(settings) / f"nginx-{port}"
    return ManagedNginx(
        root=root, port=port, host=host, upstream_ports=upstream_ports, settings=settings
    )


if __name__ == "__main__":
    print(compose_config(), end="")
