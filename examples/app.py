"""All examples behind one endpoint.

Run them embedded:      ritornello dev examples/app.py
Or as an HTTP endpoint: uvicorn app:app --app-dir examples --port 9080
                        then POST http://127.0.0.1:9070/deployments {"uri": "http://127.0.0.1:9080"}
"""

from approval import approvals
from checkout import checkout, inventory, payments
from counter import counter
from greeter import greeter
from saga import cars, flights, hotels, itinerary, suppliers, trips
from signup import signup

from ritornello import Endpoint

SERVICES = [greeter, counter, checkout, inventory, payments]
SERVICES += [trips, flights, hotels, cars, suppliers, itinerary, approvals, signup]
endpoint = Endpoint(SERVICES)
app = endpoint.asgi()
