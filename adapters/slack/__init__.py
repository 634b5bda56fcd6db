"""Slack: slash command, events and interactivity through slack-bolt (see docs/slack.md)."""
