"""Security tests: the authorization matrix on every channel, edges, output safety, secrets."""
