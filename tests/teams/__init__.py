"""Teams channel tests: real server, fake Bot Connector on 127.0.0.1."""
