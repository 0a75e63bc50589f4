"""The HTTP side: server, routing, authentication, errors, faults, throttles and control endpoints."""
