"""Microsoft Teams through botbuilder: every import of botbuilder stays in this folder."""
