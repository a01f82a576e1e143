"""data_plane/cluster."""
