"""CLI: ``python -m tests.hub --host 127.0.0.1 --port 8765 --data-dir DIR [--token T]``.

Prints the URL (use it as ``HF_ENDPOINT``) and serves until killed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.hub.auth import DEFAULT_TOKEN
from tests.hub.server import HubServer


def main(argv: list[str] | None = None) -> int:
    """Run the stand-in in the foreground.

    Parameters
    ----------
    argv : list[str], optional
        Arguments; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        Exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tests.hub", description="Local Hugging Face Hub + Jobs stand-in"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one; default 8765)")
    parser.add_argument("--data-dir", type=Path, required=True, help="on-disk store (created if missing)")
    parser.add_argument(
        "--token", default=None, help=f"extra valid token for user tester (always: {DEFAULT_TOKEN})"
    )
    parser.add_argument(
        "--job-start-delay", type=float, default=0.0, help="seconds each job stays SCHEDULING (default 0)"
    )
    args = parser.parse_args(argv)
    try:
        server = HubServer(args.data_dir, host=args.host, port=args.port, token=args.token,
                           job_start_delay_s=args.job_start_delay)  # fmt: skip
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.jobs.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
