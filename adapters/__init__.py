"""Channel adapters: each turns its platform's payloads into neutral messages and back."""
