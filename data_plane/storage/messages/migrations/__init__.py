"""The message store's own alembic history (see ``data_plane.storage.messages.migrate``)."""
