"""A moto server (DynamoDB for the lease-store tests) that carries requests out one at a
time, as DynamoDB carries out each conditional write atomically.

moto's DynamoDB model checks a ConditionExpression and stores the item in separate steps
without a lock, so under its threaded server two PutItem requests racing on one key can
both pass the same condition, which DynamoDB never allows. One lock around the whole
application restores the atomicity the lease protocol relies on; connections are still
served concurrently.

Usage: python3 moto_atomic.py PORT
"""

import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def atomic(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    run_simple("127.0.0.1", port, atomic, threaded=True)


if __name__ == "__main__":
    main()
