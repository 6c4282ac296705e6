"""Run LocalStack's runtime on the host (no Docker) for localstack/up.

Equivalent to ``python -m localstack.runtime.main`` with two fixes:

- LocalStack's twisted gateway server ignores the host part of GATEWAY_LISTEN
  and always binds 0.0.0.0 (its TCP4ServerEndpoint is created without an
  interface). The local stack must stay on loopback, so the endpoint factory is
  wrapped to bind the address that GATEWAY_LISTEN names for that port.
- The S3 provider spools object data under a fixed /tmp/localstack-s3-storage;
  LAMBDALAKE_S3_STORAGE_DIR (set by localstack/up to .run/localstack/s3-storage)
  moves it next to the rest of the stack's files.
"""

import os
import sys

# Keep this script's folder off sys.path so nothing here shadows a package.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

from twisted.internet import endpoints  # noqa: E402

_TCP4ServerEndpoint = endpoints.TCP4ServerEndpoint


def _bound_tcp4_server_endpoint(reactor, port, backlog=50, interface=""):
    if not interface:
        from localstack import config

        for listen in config.GATEWAY_LISTEN:
            if listen.port == port and listen.host not in ("", "0.0.0.0"):
                interface = listen.host
                break
    return _TCP4ServerEndpoint(reactor, port, backlog, interface)


endpoints.TCP4ServerEndpoint = _bound_tcp4_server_endpoint

_storage_dir = os.environ.get("LAMBDALAKE_S3_STORAGE_DIR")
if _storage_dir:
    import localstack.services.s3.provider as _s3_provider  # noqa: E402

    os.makedirs(_storage_dir, exist_ok=True)
    _s3_provider.DEFAULT_S3_TMP_DIR = _storage_dir

from localstack.runtime.main import main  # noqa: E402

if __name__ == "__main__":
    main()
