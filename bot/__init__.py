"""billing-bot: the billing-support desk of a Microsoft CSP partner, in chat.

Layers (see docs/architecture.md): ``adapters`` (Slack, Teams, local) turn
platform payloads into neutral messages; ``conversations`` holds the flows;
``bot`` holds the domain, the authorization policy, storage and the server.
"""

__version__ = "0.1.0"
