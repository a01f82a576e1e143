"""data_plane/gateway."""
