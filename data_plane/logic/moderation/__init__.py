"""The moderation hook: a tenant's synchronous check of every client message before it
is stored (``hook`` calls it, ``gate`` applies its verdict; docs/server_api.md)."""
