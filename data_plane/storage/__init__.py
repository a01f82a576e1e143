"""data_plane/storage."""
