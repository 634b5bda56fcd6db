"""Local fake servers for the outside APIs the bot talks to (real aiohttp servers on 127.0.0.1).

``tests.fakes.partner_center`` — Partner Center REST API + Entra ID token endpoint.
"""
