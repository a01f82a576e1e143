"""Webhook delivery in the logic node: signing, events of logins and groups, the
dispatcher that sends the outbox to tenants' endpoints (docs/server_api.md)."""
