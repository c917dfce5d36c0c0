"""The production layout's reverse proxy for `subledger bench graphql --api-processes N`:
nginx with the repository's own template (deploy/nginx/default.conf.template), in front of
N `subledger serve` processes on ports of their own.

The template is rendered as the official image renders it (the `${NAME}` variables it sets,
nothing else), with one difference: in the compose layout Docker's DNS answers the name
`api` with every replica's address, so the template has one `server` line; here each
process is a line of its own, with the same parameters. Everything else (the choice of a
replica by the caller's token, keepalive to the replicas, the headers) is the template's.
"""
from __future__ import annotations

import atexit
import enum
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path


class Front(str, enum.Enum):
    """What stands in front of several API processes in `bench graphql`."""

    #: nginx with the compose layout's template: one caller, one process.
    NGINX = "nginx"
    #: One port shared through SO_REUSEPORT: the kernel spreads connections by their addresses.
    REUSE_PORT = "reuse-port"


ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "nginx" / "default.conf.template"
_SERVER_LINE = re.compile(r"^(\s*)server \$\{SUBLEDGER_PROXY_UPSTREAM\}(.*)$", re.M)


def render(upstream_ports: list[int], listen: int) -> str:
    """The template's server block and upstream, with one `server` line per local port."""
    text = _SERVER_LINE.sub(
        lambda found: "\n".join(f"{found[1]}server 127.0.0.1:{port}{found[2]}" for port in upstream_ports),
        TEMPLATE.read_text(),
    )
    if "${SUBLEDGER_PROXY_UPSTREAM}" in text:
        raise RuntimeError(f"{TEMPLATE} has no `server ${{SUBLEDGER_PROXY_UPSTREAM}}` line this bench can expand")
    return text.replace("${SUBLEDGER_PROXY_LISTEN}", f"127.0.0.1:{listen}")


def nginx_binary() -> str | None:
    """nginx on PATH, or Debian's (/usr/sbin is not on every user's PATH)."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def main_conf(directory: Path, include: str | Path, *, error_log: str = "stderr warn") -> str:
    """nginx's main configuration for an unprivileged nginx with its files in `directory`:
    one worker, no access log, the server blocks of `include` (a file or a glob)."""
    return f"""
worker_processes 1;
pid {directory}/nginx.pid;
error_log {error_log};
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {include};
}}
"""


def start(upstream_ports: list[int], listen: int) -> subprocess.Popen[bytes]:
    """nginx (one worker, as on a 2-core machine) in the foreground, its files in a temp dir."""
    binary = nginx_binary()
    if binary is None:
        raise SystemExit("bench graphql --api-processes N needs nginx (apt-get install nginx), as the compose layout does")
    directory = Path(tempfile.mkdtemp(prefix="subledger-bench-nginx-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)  # nginx has stopped by then
    (directory / "default.conf").write_text(render(upstream_ports, listen))
    (directory / "nginx.conf").write_text(main_conf(directory, directory / "default.conf", error_log=f"{directory}/error.log warn"))
    return subprocess.Popen([binary, "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def process_tree(pid: int) -> list[int]:
    """nginx's master and its workers: the master's pid and every process whose parent it is."""
    found = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError):
                continue
    return found
