"""The examples as a Lambda handler (``template.yaml`` deploys this file).

    Handler: lambda_app.handler        (the function's code is this directory; the SDK is a layer)

``EXAMPLE_SERVICES`` (comma-separated service names) picks the services one function serves, so
``template.yaml`` can split the examples over several functions; unset, it serves all of them.
A name that is not an example fails at import, so a typo fails the deployment's discovery
instead of silently serving less.

Locally, the Lambda emulator answers every function name with this handler::

    ritornello lambda-emulator examples/lambda_app.py --port 9001
"""

import os

from app import SERVICES

from ritornello import Endpoint

SERVICES_ENV = "EXAMPLE_SERVICES"


def selected_services(names: str | None) -> list:
    """The example services named in ``names`` (comma-separated), in that order; all if empty."""
    wanted = [n.strip() for n in (names or "").split(",") if n.strip()]
    if not wanted:
        return list(SERVICES)
    by_name = {s.name: s for s in SERVICES}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise RuntimeError(
            f"{SERVICES_ENV} names unknown services {unknown}; the examples are {sorted(by_name)}"
        )
    return [by_name[n] for n in wanted]


endpoint = Endpoint(selected_services(os.environ.get(SERVICES_ENV)))
handler = endpoint.lambda_handler()
