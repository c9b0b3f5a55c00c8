"""The HTTP surface: routes, request and response helpers, credentials, the OpenAPI description."""
