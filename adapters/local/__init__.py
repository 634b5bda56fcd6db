"""The local channel: a terminal chat and the loopback HTTP endpoint it talks to."""
