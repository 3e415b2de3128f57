"""Web plumbing around the Dash pages: what every request passes through and the plain routes.

session (the sign-in gate, CSRF, session cookies), headers (CSP and security headers), login (the
sign-in, sign-out and setup forms), timing (Server-Timing), shared_answers (panel answers shared
by every viewer of one scope), boundaries and device_layer (map geometry and device points),
ingest_api and openapi (the HTTP ingest API and its description). `app.create_app()` registers
them in order.
"""
