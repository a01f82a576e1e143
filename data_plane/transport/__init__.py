"""data_plane/transport."""
