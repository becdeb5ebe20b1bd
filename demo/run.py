"""``make demo``: serve demo/sites on loopback, write a demo sources.toml, run the daemon.

Everything lives under ``demo-run/`` (git-ignored): the configuration, the
database and the published feeds. Ctrl-C stops both servers.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aggregator.cli import main as aggregator_main

HERE = Path(__file__).parent


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    workdir = Path(os.environ.get("DEMO_DIR", "demo-run")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=str(HERE / "sites"))
    sites = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=sites.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{sites.server_address[1]}"
    config = workdir / "sources.toml"
    port = os.environ.get("DEMO_PORT", "8080")
    text = (HERE / "sources.template.toml").read_text(encoding="utf-8")
    config.write_text(text.replace("BASE", base).replace("port = 8080", f"port = {port}"), encoding="utf-8")
    print(f"demo sites on {base}/ ; feeds on http://127.0.0.1:{port}/ (Ctrl-C stops)", file=sys.stderr)
    try:
        return aggregator_main(["--config", str(config), "run"])
    finally:
        sites.shutdown()


if __name__ == "__main__":
    sys.exit(main())
